import CShims
import Glibc
import HTTPTypes
import HotPoolCore
import HotPoolHTTP
import HotPoolStateMachine
import Logging

/// What each new connection is dialed with, in turn: the next fingerprint profile (with one of
/// its Accept-Language choices, at random) and the next local address of the target's family.
struct DialRotation {
    let profiles: [FingerprintSpec]
    /// Per profile, per Accept-Language choice: the request headers a connection adds, in the
    /// HTTP/1.1 and HTTP/2 forms.
    private let profileHeaders: [[(http1: ProfileHeaders, http2: ProfileHeaders)]]
    private var nextProfileIndex = 0
    /// The configured local addresses by family (4, 6), and where each rotation resumes.
    private let localAddresses: [Int32: [String]]
    private var nextLocalAddress: [Int32: Int] = [:]

    init(_ config: HotPoolConfiguration) {
        localAddresses = Dictionary(grouping: config.localAddresses, by: ipFamily)
        profiles = config.profiles
        profileHeaders = profiles.map { spec in
            func fields(_ headers: [ProfileHeader]) -> [HTTPField] {
                headers.compactMap { header in HTTPField.Name(header.name).map { HTTPField(name: $0, value: header.value) } }
            }
            func choice(_ fields: [HTTPField], _ language: String?) -> ProfileHeaders {
                guard let language else { return ProfileHeaders(fields) }
                return ProfileHeaders(fields.map { $0.name == .acceptLanguage ? HTTPField(name: .acceptLanguage, value: language) : $0 })
            }
            let (http1, http2) = (fields(spec.headers), fields(spec.http2.headers))
            let languages: [String?] = spec.acceptLanguages.isEmpty ? [nil] : spec.acceptLanguages
            return languages.map { (choice(http1, $0), choice(http2, $0)) }
        }
    }

    /// The profile the next dial takes (its index in `profiles`) and one of its header choices.
    mutating func nextProfile() -> (index: Int, headers: (http1: ProfileHeaders, http2: ProfileHeaders)) {
        let index = nextProfileIndex
        nextProfileIndex = (index + 1) % profiles.count
        return (index, profileHeaders[index].randomElement()!)
    }

    /// Starts the connect to `address`:`port` (a target, or a proxy), bound to the next local
    /// address of its family if any are configured (one that fails to bind is skipped); returns
    /// the fd or -errno, and the address; nil if none could be bound.
    mutating func connect(to address: String, port: Int, logger: Logger) -> (fd: Int32, local: String?)? {
        let family = ipFamily(address)
        var inProgress: Int32 = 0, bindFailed: Int32 = 0
        guard let locals = localAddresses[family] else {
            return (hp_tcp_connect(address, Int32(port), nil, &inProgress, &bindFailed), nil)
        }
        let start = nextLocalAddress[family, default: 0]
        for step in 0..<locals.count {
            let local = locals[(start + step) % locals.count]
            let fd = hp_tcp_connect(address, Int32(port), local, &inProgress, &bindFailed)
            guard fd < 0 && bindFailed != 0 else {
                nextLocalAddress[family] = (start + step + 1) % locals.count
                return (fd, local)
            }
            logger.warning("local address skipped: bind failed", metadata: ["local": "\(local)", "error": "\(String(cString: strerror(-fd)))"])
        }
        return nil
    }
}
