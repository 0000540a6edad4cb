@testable import HotPool
@testable import HotPoolCore
@testable import HotPoolDriver
@testable import HotPoolHTTP
@testable import HotPoolIO
@testable import HotPoolStateMachine

/// What kind of error a `HotPoolError` is, for tests to compare: `error.code == .malformedHeader`.
/// When `HotPoolError` becomes a struct with a `code` (today's case names as its static codes),
/// this extension goes and the tests read the same. The switch names every case, so a new case
/// does not compile here until it has its code.
extension HotPoolError {
    enum Code: Sendable, Hashable {
        case poolClosed, invalidConfiguration, invalidURL, invalidHostName, unsupportedScheme, invalidRequest
        case noAddresses, allAddressesBlacklisted, addressBlacklisted, invalidIP, validationFailed
        case connectFailed, localAddressUnavailable, tlsHandshakeFailed, timeout, staleConnection
        case connectionBusy, connectionClosed, networkError, tlsError, unexpectedEOF, streamReset
        case malformedStatusLine, malformedHeader, responseHeadersTooLarge, tooManyResponseHeaderFields
        case tooManyInterimResponses, responseBodyTooLarge, badChunkSize, invalidContentLength, cancelled
    }

    var code: Code {
        switch self {
        case .poolClosed: .poolClosed
        case .invalidConfiguration: .invalidConfiguration
        case .invalidURL: .invalidURL
        case .invalidHostName: .invalidHostName
        case .unsupportedScheme: .unsupportedScheme
        case .invalidRequest: .invalidRequest
        case .noAddresses: .noAddresses
        case .allAddressesBlacklisted: .allAddressesBlacklisted
        case .addressBlacklisted: .addressBlacklisted
        case .invalidIP: .invalidIP
        case .validationFailed: .validationFailed
        case .connectFailed: .connectFailed
        case .localAddressUnavailable: .localAddressUnavailable
        case .tlsHandshakeFailed: .tlsHandshakeFailed
        case .timeout: .timeout
        case .staleConnection: .staleConnection
        case .connectionBusy: .connectionBusy
        case .connectionClosed: .connectionClosed
        case .networkError: .networkError
        case .tlsError: .tlsError
        case .unexpectedEOF: .unexpectedEOF
        case .streamReset: .streamReset
        case .malformedStatusLine: .malformedStatusLine
        case .malformedHeader: .malformedHeader
        case .responseHeadersTooLarge: .responseHeadersTooLarge
        case .tooManyResponseHeaderFields: .tooManyResponseHeaderFields
        case .tooManyInterimResponses: .tooManyInterimResponses
        case .responseBodyTooLarge: .responseBodyTooLarge
        case .badChunkSize: .badChunkSize
        case .invalidContentLength: .invalidContentLength
        case .cancelled: .cancelled
        }
    }
}
