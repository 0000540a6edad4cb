import HTTPTypes

/// The TLS ClientHello and request headers a connection presents, shaped like a real browser's.
///
/// A profile is applied through OpenSSL 3.0's own knobs, so it can match a browser only as far
/// as OpenSSL allows; docs/fingerprints.md lists, per preset, the JA3/JA4 it produces and each difference
/// from the real browser with its reason.
public enum FingerprintProfile: Sendable, Hashable {
    /// Chrome 131 on Windows.
    case chrome
    /// Firefox 133 on Windows.
    case firefox
    /// Safari 18 on macOS.
    case safari
    /// Any shape, as plain data.
    case custom(FingerprintSpec)

    /// The data behind the profile.
    public var spec: FingerprintSpec {
        switch self {
        case .chrome: .chrome
        case .firefox: .firefox
        case .safari: .safari
        case .custom(let spec): spec
        }
    }

    /// The profile's name (the spec's, for a custom one).
    public var name: String { spec.name }
}

/// A TLS version a spec can bound.
public enum TLSVersion: UInt16, Sendable, Hashable {
    case tls12 = 0x0303
    case tls13 = 0x0304
}

/// ClientHello extensions a spec may add to the ones OpenSSL always sends.
public enum OptionalExtension: Sendable, Hashable, CaseIterable {
    /// status_request (5): OCSP stapling.
    case statusRequest
    /// signed_certificate_timestamp (18).
    case signedCertificateTimestamp
    /// session_ticket (35).
    case sessionTicket
    /// padding (21): OpenSSL pads a ClientHello of 256–511 bytes to 512 (no extension otherwise).
    case padding
    /// encrypt_then_mac (22), which OpenSSL sends by default and browsers do not.
    case encryptThenMAC
    /// Two GREASE extensions (RFC 8701), the first empty and the last with one zero byte.
    case grease
    /// A GREASE encrypted_client_hello (0xfe0d) with a random, well-formed payload.
    case echGrease
}

/// One request header of a profile, in the browser's order.
public struct ProfileHeader: Sendable, Hashable {
    /// The fields that frame a request, which the pool sets: a profile's headers must not name them.
    static let framingFields: Set<HTTPField.Name> = [.hostField, .contentLength, .transferEncoding]

    /// The field name as the browser spells it.
    public var name: String
    /// The value.
    public var value: String

    /// A header.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A fingerprint as plain data: what the ClientHello offers, in order, and the request headers.
/// Cipher suites, groups and signature algorithms are IANA code points.
public struct FingerprintSpec: Sendable, Hashable {
    /// A name for logs and `ConnectionStats.profile`.
    public var name: String
    /// TLS 1.3 cipher suites, in order.
    public var tls13CipherSuites: [UInt16]
    /// TLS 1.2 cipher suites, in order (sent after the TLS 1.3 ones).
    public var tls12CipherSuites: [UInt16]
    /// supported_groups, in order.
    public var supportedGroups: [UInt16]
    /// signature_algorithms, in order.
    public var signatureAlgorithms: [UInt16]
    /// ALPN protocol names, in order (`HotPoolConfiguration.httpVersions` can leave some out).
    public var alpn: [String]
    /// Optional extensions to send.
    public var extensions: Set<OptionalExtension>
    /// Lowest TLS version offered.
    public var minVersion: TLSVersion
    /// Highest TLS version offered.
    public var maxVersion: TLSVersion
    /// Request headers added to every request that does not set them, in this order after Host.
    public var headers: [ProfileHeader]
    /// Accept-Language values; each connection takes one at random (the header's value in
    /// `headers` and `http2.headers` is replaced). Empty = keep the value in `headers`.
    public var acceptLanguages: [String]
    /// The HTTP/2 shape of connections whose server picks `h2`.
    public var http2: HTTP2Fingerprint

    /// A spec from its parts.
    public init(
        name: String, tls13CipherSuites: [UInt16], tls12CipherSuites: [UInt16], supportedGroups: [UInt16],
        signatureAlgorithms: [UInt16], alpn: [String], extensions: Set<OptionalExtension>,
        minVersion: TLSVersion = .tls12, maxVersion: TLSVersion = .tls13,
        headers: [ProfileHeader] = [], acceptLanguages: [String] = [], http2: HTTP2Fingerprint = .plain
    ) {
        self.name = name
        self.tls13CipherSuites = tls13CipherSuites
        self.tls12CipherSuites = tls12CipherSuites
        self.supportedGroups = supportedGroups
        self.signatureAlgorithms = signatureAlgorithms
        self.alpn = alpn
        self.extensions = extensions
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.headers = headers
        self.acceptLanguages = acceptLanguages
        self.http2 = http2
    }

    /// The cipher suites the ClientHello carries: TLS 1.3 ones (when offered), TLS 1.2 ones,
    /// then OpenSSL's TLS_EMPTY_RENEGOTIATION_INFO_SCSV (0x00ff), which it always appends.
    public var advertisedCipherSuites: [UInt16] {
        (maxVersion == .tls13 ? tls13CipherSuites : []) + tls12CipherSuites + [0x00ff]
    }

    /// The extension types the ClientHello carries, GREASE left out, in ascending order.
    /// padding (21) appears only when OpenSSL pads (see `OptionalExtension.padding`).
    public var advertisedExtensions: [UInt16] {
        var types: Set<UInt16> = [0, 10, 11, 13, 23]  // SNI, groups, point formats, sigalgs, EMS
        if maxVersion == .tls13 { types.formUnion([43, 45, 51]) }  // versions, PSK modes, key share
        if !alpn.isEmpty { types.insert(16) }
        let optional: [OptionalExtension: UInt16] = [
            .statusRequest: 5, .signedCertificateTimestamp: 18, .sessionTicket: 35, .padding: 21,
            .encryptThenMAC: 22, .echGrease: 0xfe0d,
        ]
        for (option, type) in optional where extensions.contains(option) { types.insert(type) }
        return types.sorted()
    }
}

extension HTTPField.Name {
    /// The `Host` field name (HTTP/2 forbids the field and carries its value as `:authority`).
    package static let hostField = HTTPField.Name("Host")!
}
