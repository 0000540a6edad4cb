import HTTPTypes

/// The TLS ClientHello and request headers a connection presents, shaped like a real browser's.
///
/// The browser presets are built by BoringSSL, the browsers' own TLS library, and match the
/// browser's JA4 and HTTP/2 (Akamai) fingerprint; README.md's preset table lists, per preset, what
/// it sends against what the browser sends, measured, and the differences with their reasons.
public enum FingerprintProfile: Sendable, Hashable {
    /// Chrome 150 on macOS: the default.
    case chrome
    /// Chrome 131 on macOS (ALPS on its old code point, no ML-DSA signature algorithms).
    case chrome131
    /// Chrome 133 on macOS (the fingerprint of Chrome 133 to 149).
    case chrome133
    /// Firefox 147 on macOS (as close as BoringSSL allows: see README.md).
    case firefox
    /// Safari 26.0.1 on macOS (and later 26.x).
    case safari
    /// Safari 18 on macOS.
    case safari18
    /// No browser: OpenSSL 3.0's own ClientHello with modern suites, and no profile headers.
    case plain
    /// Any shape, as plain data.
    case custom(FingerprintSpec)

    /// The data behind the profile.
    public var spec: FingerprintSpec {
        switch self {
        case .chrome: .chrome
        case .chrome131: .chrome131
        case .chrome133: .chrome133
        case .firefox: .firefox
        case .safari: .safari
        case .safari18: .safari18
        case .plain: .plain
        case .custom(let spec): spec
        }
    }

    /// The profile's name (the spec's, for a custom one).
    public var name: String { spec.name }

    /// The presets by the names configuration files and the command line give them: the cases' names.
    public static let presets: [(name: String, profile: FingerprintProfile)] = [
        ("chrome", .chrome), ("chrome131", .chrome131), ("chrome133", .chrome133), ("firefox", .firefox),
        ("safari", .safari), ("safari18", .safari18), ("plain", .plain),
    ]

    /// The preset named `presetName` in `presets`; nil for any other name.
    public init?(presetName: String) {
        guard let preset = Self.presets.first(where: { $0.name == presetName }) else { return nil }
        self = preset.profile
    }

    /// The profile's name in `presets`; nil for a custom one.
    public var presetName: String? { Self.presets.first { $0.profile == self }?.name }
}

/// The TLS library that builds a spec's ClientHello.
public enum TLSEngine: String, Sendable, Hashable {
    /// BoringSSL (Chrome's own TLS library): GREASE, extension permutation, ALPS, ECH GREASE,
    /// certificate compression and post-quantum key shares as browsers send them.
    case boringSSL
    /// OpenSSL 3.0 (the system's `libssl`): no browser-only extensions, and its renegotiation
    /// SCSV (0x00ff) among the cipher suites; GREASE and ECH GREASE are added as custom extensions.
    case openSSL
}

/// A TLS version a spec can bound.
public enum TLSVersion: UInt16, Sendable, Hashable {
    case tls10 = 0x0301
    case tls11 = 0x0302
    case tls12 = 0x0303
    case tls13 = 0x0304
}

/// ClientHello extensions a spec may add to the ones its engine always sends.
public enum OptionalExtension: Sendable, Hashable, CaseIterable {
    /// status_request (5): OCSP stapling.
    case statusRequest
    /// signed_certificate_timestamp (18).
    case signedCertificateTimestamp
    /// session_ticket (35).
    case sessionTicket
    /// padding (21): OpenSSL pads a ClientHello of 256–511 bytes to 512; BoringSSL, which no
    /// longer pads by size, always sends it, with two zero bytes.
    case padding
    /// encrypt_then_mac (22), which OpenSSL sends by default and browsers do not (OpenSSL only).
    case encryptThenMAC
    /// GREASE (RFC 8701): BoringSSL puts GREASE values among the cipher suites, extensions,
    /// groups, versions and key shares as Chrome does; OpenSSL adds two GREASE extensions only.
    case grease
    /// A GREASE encrypted_client_hello (0xfe0d) with a random, well-formed payload.
    case echGrease

    /// The extension's type; nil for GREASE, whose types vary.
    var extensionType: UInt16? {
        switch self {
        case .statusRequest: 5
        case .signedCertificateTimestamp: 18
        case .sessionTicket: 35
        case .padding: 21
        case .encryptThenMAC: 22
        case .grease: nil
        case .echGrease: 0xfe0d
        }
    }
}

/// TLS extension types (IANA code points) the engines send without an `OptionalExtension`.
enum TLSExtensionType {
    static let serverName: UInt16 = 0
    static let supportedGroups: UInt16 = 10
    static let ecPointFormats: UInt16 = 11
    static let signatureAlgorithms: UInt16 = 13
    static let alpn: UInt16 = 16
    static let extendedMasterSecret: UInt16 = 23
    static let compressCertificate: UInt16 = 27
    static let preSharedKey: UInt16 = 41
    static let supportedVersions: UInt16 = 43
    static let pskKeyExchangeModes: UInt16 = 45
    static let keyShare: UInt16 = 51
    static let renegotiationInfo: UInt16 = 0xff01

    /// What every ClientHello carries, on either engine.
    static let inEveryHello: Set<UInt16> = [serverName, supportedGroups, ecPointFormats, signatureAlgorithms, extendedMasterSecret]
    /// What a ClientHello offering TLS 1.3 adds.
    static let tls13: Set<UInt16> = [supportedVersions, pskKeyExchangeModes, keyShare]
}

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa.
package enum GREASE {
    /// The low nibble of each byte, which is 0xa in every GREASE value.
    private static let lowNibbles: UInt16 = 0x0f0f
    private static let lowNibblesOfGREASE: UInt16 = 0x0a0a

    /// The sixteen GREASE values of RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa.
    package static let values: [UInt16] = (0..<UInt16(16)).map { $0 << 12 | $0 << 4 | lowNibblesOfGREASE }

    /// Whether `value` is GREASE: both bytes equal, each with low nibble 0xa.
    package static func contains(_ value: UInt16) -> Bool {
        value & lowNibbles == lowNibblesOfGREASE && value >> UInt8.bitWidth == value & UInt16(UInt8.max)
    }
}

/// The code point ALPS (application_settings) is sent on.
public enum ALPSCodepoint: UInt16, Sendable, Hashable {
    /// 0x4469, Chrome up to 132.
    case legacy = 0x4469
    /// 0x44cd, Chrome 133 and later.
    case current = 0x44cd
}

/// ALPS (application_settings, Chrome's): the ALPN protocols it is offered for, on a code point.
public struct ApplicationSettings: Sendable, Hashable {
    /// ALPN names (Chrome: `h2`).
    public var protocols: [String]
    /// The extension's code point.
    public var codepoint: ALPSCodepoint

    /// ALPS for `protocols` on `codepoint`.
    public init(protocols: [String], codepoint: ALPSCodepoint) {
        self.protocols = protocols
        self.codepoint = codepoint
    }
}

/// A certificate compression algorithm (RFC 8879) a ClientHello offers; the pool decompresses
/// with zlib, brotli and zstd.
public enum CertificateCompression: UInt16, Sendable, Hashable {
    case zlib = 1
    case brotli = 2
    case zstd = 3
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
/// Cipher suites, groups and signature algorithms are IANA code points. Copy a preset and change
/// what you need (`var spec = FingerprintSpec.chrome`), or start from a JA3 and an Akamai string
/// (`FingerprintSpec(ja3:akamai:)`).
public struct FingerprintSpec: Sendable, Hashable {
    /// A name for logs and `ConnectionStats.profile`.
    public var name: String
    /// The TLS library that builds the ClientHello.
    public var engine: TLSEngine
    /// TLS 1.3 cipher suites. OpenSSL sends them in this order; BoringSSL sends its own three
    /// (0x1301, 0x1302, 0x1303) in its order, so there they must be those three.
    public var tls13CipherSuites: [UInt16]
    /// TLS 1.2 cipher suites, in order (sent after the TLS 1.3 ones). BoringSSL offers up to five
    /// it does not implement (Safari's ECDHE 3DES suites) all the same; a server cannot pick those.
    public var tls12CipherSuites: [UInt16]
    /// supported_groups, in order (0x11ec is X25519MLKEM768, BoringSSL only).
    public var supportedGroups: [UInt16]
    /// The groups of the key_share extension, in order; empty = the engine's choice (BoringSSL:
    /// the first group, and X25519 too when the first is post-quantum, as Chrome). BoringSSL only.
    public var keyShares: [UInt16]
    /// signature_algorithms, in order. BoringSSL also offers one listed again (as Safari lists
    /// 0x0805 twice) or one it does not know; a server cannot pick those.
    public var signatureAlgorithms: [UInt16]
    /// ALPN protocol names, in order (`HotPoolConfiguration.httpVersions` can leave some out).
    public var alpn: [String]
    /// ALPS (application_settings) for these ALPN names on this code point; nil = none. BoringSSL only.
    public var applicationSettings: ApplicationSettings?
    /// compress_certificate algorithms, in order; empty = none. BoringSSL only.
    public var certificateCompression: [CertificateCompression]
    /// Optional extensions to send.
    public var extensions: Set<OptionalExtension>
    /// Whether each connection sends its extensions in a new random order, as Chrome 110 and
    /// later do. BoringSSL only.
    public var permutesExtensions: Bool
    /// Lowest TLS version offered.
    public var minVersion: TLSVersion
    /// Highest TLS version offered.
    public var maxVersion: TLSVersion
    /// Whether a connection offers a session an earlier one to the same host, IP, local address
    /// and profile received, as browsers do (a TLS 1.3 ticket is offered once).
    public var resumesSessions: Bool
    /// Request headers added to every request that does not set them, in this order after Host.
    public var headers: [ProfileHeader]
    /// Accept-Language values; each connection takes one at random (the header's value in
    /// `headers` and `http2.headers` is replaced). Empty = keep the value in `headers`.
    public var acceptLanguages: [String]
    /// The HTTP/2 shape of connections whose server picks `h2`.
    public var http2: HTTP2Fingerprint

    /// A spec from its parts.
    public init(
        name: String, engine: TLSEngine = .boringSSL, tls13CipherSuites: [UInt16], tls12CipherSuites: [UInt16],
        supportedGroups: [UInt16], keyShares: [UInt16] = [], signatureAlgorithms: [UInt16], alpn: [String],
        applicationSettings: ApplicationSettings? = nil,
        certificateCompression: [CertificateCompression] = [], extensions: Set<OptionalExtension>,
        permutesExtensions: Bool = false, minVersion: TLSVersion = .tls12, maxVersion: TLSVersion = .tls13,
        resumesSessions: Bool = true, headers: [ProfileHeader] = [], acceptLanguages: [String] = [],
        http2: HTTP2Fingerprint = .plain
    ) {
        self.name = name
        self.engine = engine
        self.tls13CipherSuites = tls13CipherSuites
        self.tls12CipherSuites = tls12CipherSuites
        self.supportedGroups = supportedGroups
        self.keyShares = keyShares
        self.signatureAlgorithms = signatureAlgorithms
        self.alpn = alpn
        self.applicationSettings = applicationSettings
        self.certificateCompression = certificateCompression
        self.extensions = extensions
        self.permutesExtensions = permutesExtensions
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.resumesSessions = resumesSessions
        self.headers = headers
        self.acceptLanguages = acceptLanguages
        self.http2 = http2
    }

    /// The cipher suites the ClientHello carries, GREASE left out: the TLS 1.3 ones (when
    /// offered), the TLS 1.2 ones, and under OpenSSL its TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    /// (0x00ff), which it always appends.
    public var advertisedCipherSuites: [UInt16] {
        let tls13 = maxVersion == .tls13 ? tls13CipherSuites : []
        return engine == .openSSL ? tls13 + tls12CipherSuites + [0x00ff] : tls13 + tls12CipherSuites
    }

    /// The extension types the ClientHello carries, GREASE left out, in ascending order.
    /// Under OpenSSL, padding (21) appears only when it pads (see `OptionalExtension.padding`).
    public var advertisedExtensions: [UInt16] {
        var types = TLSExtensionType.inEveryHello
        if maxVersion == .tls13 { types.formUnion(TLSExtensionType.tls13) }
        if !alpn.isEmpty { types.insert(TLSExtensionType.alpn) }
        if engine == .boringSSL {
            types.insert(TLSExtensionType.renegotiationInfo)  // where OpenSSL sends the SCSV
            if !certificateCompression.isEmpty { types.insert(TLSExtensionType.compressCertificate) }
            if let alps = applicationSettings, !alps.protocols.isEmpty { types.insert(alps.codepoint.rawValue) }
        }
        // encrypt_then_mac is OpenSSL's only.
        for option in extensions where engine == .openSSL || option != .encryptThenMAC {
            if let type = option.extensionType { types.insert(type) }
        }
        return types.sorted()
    }
}

extension HTTPField.Name {
    /// The `Host` field name (HTTP/2 forbids the field and carries its value as `:authority`).
    package static let hostField = HTTPField.Name("Host")!
}
