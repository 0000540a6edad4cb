// Fingerprints from the strings other clients take: JA3 for the ClientHello (tls-client's `ja3`,
// curl_cffi's `ja3=`, azuretls' `ApplyJa3`), Akamai for the HTTP/2 preface (curl_cffi's
// `akamai=`, azuretls' `ApplyHTTP2`).

extension FingerprintSpec {
    /// A spec from a JA3 string and, optionally, an Akamai string; what they do not say comes
    /// from `base`.
    ///
    /// JA3 is `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`, decimal
    /// values joined by `-` within a field, as a ClientHello lists them:
    /// - GREASE values (0x0a0a, 0x1a1a, ... 0xfafa) in any list are left out and turn on `.grease`.
    /// - Cipher suites 0x13xx are `tls13CipherSuites`, the others `tls12CipherSuites`, in order.
    /// - The curves are `supportedGroups`, in order; `keyShares` are base's if each of them is
    ///   among the curves, else empty (the engine's choice).
    /// - The version (769...772, TLS 1.0 to 1.3) is `maxVersion`, or TLS 1.3 when
    ///   supported_versions (43) is listed; `minVersion` is base's, lowered to `maxVersion` if above.
    /// - Extensions: status_request (5), signed_certificate_timestamp (18), session_ticket (35),
    ///   padding (21), encrypt_then_mac (22) and encrypted_client_hello (65037, sent as GREASE) are
    ///   `extensions`; ALPN (16) keeps base's `alpn` (without it, none); compress_certificate (27)
    ///   keeps base's `certificateCompression` (brotli if base has none); ALPS on 17513 or 17613 is
    ///   offered for `h2` on that code point. The engine sends 0, 10, 11, 13, 23, 41, 43, 45, 51 and
    ///   65281 itself. Any other type is refused: neither engine can send it.
    /// - JA3's extension order is not kept: BoringSSL sends its own order, or a new one per
    ///   connection when `permutesExtensions` (base's) is set.
    /// - The point formats must be `0` (uncompressed, the only one the engines send) or empty.
    ///
    /// `signatureAlgorithms` (JA3 has none), `engine`, `permutesExtensions`, `resumesSessions`,
    /// `headers` and `acceptLanguages` are base's; `http2` is read from `akamai`
    /// (`HTTP2Fingerprint(akamai:base:)` over base's) or is base's. What the engine cannot send
    /// (encrypt_then_mac on BoringSSL, TLS 1.3 suites other than its three, more than five
    /// cipher suites BoringSSL does not implement) is refused by `HotConnPool.init`, as for any spec.
    ///
    /// - Throws: `HotPoolError.invalidConfiguration` naming the offending token: not five fields,
    ///   a value that is not a decimal in 0...65535, a version outside 769...772, a value listed
    ///   twice, no cipher suite, a point format other than 0, an extension neither engine can
    ///   send (record_size_limit (28), delegated_credentials (34), ...), or a bad `akamai`.
    public init(ja3: String, akamai: String? = nil, name: String = "ja3", base: FingerprintSpec = .chrome) throws(HotPoolError) {
        let fields = ja3.split(separator: JA3.fieldSeparator, omittingEmptySubsequences: false)
        guard fields.count == JA3.Field.allCases.count else {
            let names = JA3.Field.allCases.map(\.description).joined(separator: ", ")
            throw .invalidConfiguration("JA3 \"\(ja3)\": \(fields.count) fields, not the \(JA3.Field.allCases.count) of \(names)")
        }
        func list(_ field: JA3.Field) throws(HotPoolError) -> (values: [UInt16], grease: Bool) {
            try JA3.values(fields[field.rawValue], of: field)
        }
        let version: UInt16 = try decimal(fields[JA3.Field.version.rawValue], in: "JA3 \(JA3.Field.version)")
        guard let listedVersion = TLSVersion(rawValue: version) else {
            throw .invalidConfiguration(
                "JA3 version: \(version) is not \(TLSVersion.tls10.rawValue)...\(TLSVersion.tls13.rawValue) (TLS 1.0 to 1.3)")
        }
        let ciphers = try list(.cipherSuites), types = try list(.extensions), curves = try list(.curves)
        let pointFormats = try list(.pointFormats)
        guard !ciphers.values.isEmpty else {
            throw .invalidConfiguration("JA3 cipher suites: \"\(fields[JA3.Field.cipherSuites.rawValue])\" offers none (GREASE aside)")
        }
        guard !pointFormats.grease, pointFormats.values.allSatisfy({ $0 == JA3.uncompressedPoints }) else {
            throw .invalidConfiguration("""
                JA3 point formats: "\(fields[JA3.Field.pointFormats.rawValue])": the engines send only uncompressed \
                points (\(JA3.uncompressedPoints))
                """)
        }
        let unsendable = types.values.filter { !JA3.sendableExtensions.contains($0) }
        guard unsendable.isEmpty else {
            let named = unsendable.map { type in JA3.unsendableNames[type].map { "\(type) (\($0))" } ?? String(type) }
            throw .invalidConfiguration("JA3 extensions: neither engine can send \(named.joined(separator: ", "))")
        }
        let alps = types.values.compactMap(ALPSCodepoint.init(rawValue:))
        guard alps.count <= 1 else {
            let codepoints = alps.map { String($0.rawValue) }.joined(separator: ", ")
            throw .invalidConfiguration("JA3 extensions: ALPS on two code points (\(codepoints))")
        }

        self = base
        self.name = name
        tls13CipherSuites = ciphers.values.filter(JA3.isTLS13CipherSuite)
        tls12CipherSuites = ciphers.values.filter { !JA3.isTLS13CipherSuite($0) }
        supportedGroups = curves.values
        keyShares = base.keyShares.allSatisfy(curves.values.contains) ? base.keyShares : []
        alpn = types.values.contains(TLSExtensionType.alpn) ? base.alpn : []
        applicationSettings = alps.first.map { ApplicationSettings(protocols: JA3.alpsProtocols, codepoint: $0) }
        certificateCompression = !types.values.contains(TLSExtensionType.compressCertificate) ? []
            : base.certificateCompression.isEmpty ? JA3.defaultCertificateCompression : base.certificateCompression
        extensions = Set(types.values.compactMap { JA3.optionalExtensions[$0] })
        if ciphers.grease || types.grease || curves.grease { extensions.insert(.grease) }
        maxVersion = types.values.contains(TLSExtensionType.supportedVersions) ? .tls13 : listedVersion
        if minVersion.rawValue > maxVersion.rawValue { minVersion = maxVersion }
        if let akamai { http2 = try HTTP2Fingerprint(akamai: akamai, base: base.http2) }
    }
}

extension HTTP2Fingerprint {
    /// The HTTP/2 shape an Akamai fingerprint string gives, the exact inverse of `akamai`:
    /// `HTTP2Fingerprint(akamai: shape.akamai, base: shape) == shape`.
    ///
    /// The string is `SETTINGS|WINDOW_UPDATE|PRIORITY|PSEUDO_HEADER_ORDER`, e.g. Chrome's
    /// `1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p`:
    /// - SETTINGS: `id:value` pairs (id 0...65535, value 0...2^32-1) joined by `;`, in the order
    ///   sent; empty for none.
    /// - WINDOW_UPDATE: the connection window increment, `00` for none.
    /// - PRIORITY: `0`, as HotPool sends no PRIORITY frames.
    /// - The pseudo-header order: `m`, `a`, `s`, `p` (`:method`, `:authority`, `:scheme`, `:path`)
    ///   joined by `,`, each once.
    ///
    /// The string does not give the HEADERS frames' priority or the request headers: those are
    /// `base`'s.
    ///
    /// - Throws: `HotPoolError.invalidConfiguration` quoting the string and naming what is wrong:
    ///   not four parts, a setting that is not `id:value` in range, more than `maxSettings`
    ///   settings, one twice or outside RFC 9113's range, a window increment past
    ///   `maxConnectionWindowIncrement`, PRIORITY frames, or an order that does not name each
    ///   pseudo-header once.
    public init(akamai: String, base: HTTP2Fingerprint = FingerprintSpec.chrome.http2) throws(HotPoolError) {
        let context = "Akamai \"\(akamai)\""
        let parts = akamai.split(separator: Akamai.partSeparator, omittingEmptySubsequences: false)
        guard parts.count == Akamai.parts.count else {
            let format = Akamai.parts.joined(separator: Akamai.partSeparator)
            throw .invalidConfiguration("\(context): \(parts.count) parts, not the \(Akamai.parts.count) of \(format)")
        }
        let (settingsPart, windowPart, priorityPart, orderPart) = (parts[0], parts[1], parts[2], parts[3])
        var settings: [HTTP2Setting] = []
        let pairs = settingsPart.isEmpty ? [] : settingsPart.split(separator: Akamai.settingSeparator, omittingEmptySubsequences: false)
        for pair in pairs {
            let idAndValue = pair.split(separator: Akamai.idValueSeparator, omittingEmptySubsequences: false)
            guard idAndValue.count == 2 else { throw .invalidConfiguration("\(context): setting \"\(pair)\" is not id:value") }
            let setting = "\(context), setting \"\(pair)\""
            settings.append(HTTP2Setting(try decimal(idAndValue[0], in: setting), try decimal(idAndValue[1], in: setting)))
        }
        // `00`, no WINDOW_UPDATE, reads as an increment of 0.
        let window: UInt32 = try decimal(windowPart, in: "\(context), WINDOW_UPDATE")
        guard priorityPart == Akamai.noPriorityFrames else {
            throw .invalidConfiguration("""
                \(context): PRIORITY "\(priorityPart)": HotPool sends no PRIORITY frames, so this part must be \
                \(Akamai.noPriorityFrames)
                """)
        }
        var order: [HTTP2PseudoHeader] = []
        for letter in orderPart.split(separator: Akamai.letterSeparator, omittingEmptySubsequences: false) {
            guard let field = HTTP2PseudoHeader.allCases.first(where: { String($0.akamaiLetter) == letter }) else {
                let letters = HTTP2PseudoHeader.allCases.map { String($0.akamaiLetter) }.joined(separator: ", ")
                throw .invalidConfiguration("\(context): \"\(letter)\" is not a pseudo-header letter (\(letters))")
            }
            order.append(field)
        }
        self.init(settings: settings, connectionWindowIncrement: window, headersPriority: base.headersPriority,
                  pseudoHeaderOrder: order, headers: base.headers)
        try validate(in: context)
    }
}

/// The JA3 format, and how its values map onto a spec.
private enum JA3 {
    /// The fields, in order.
    enum Field: Int, CaseIterable, CustomStringConvertible {
        case version, cipherSuites, extensions, curves, pointFormats

        var description: String {
            switch self {
            case .version: "version"
            case .cipherSuites: "cipher suites"
            case .extensions: "extensions"
            case .curves: "elliptic curves"
            case .pointFormats: "point formats"
            }
        }
    }

    static let fieldSeparator = ","
    static let valueSeparator = "-"
    /// The one EC point format the engines send: uncompressed.
    static let uncompressedPoints: UInt16 = 0
    /// The high byte of the TLS 1.3 cipher suites (0x1301, 0x1302, ...).
    static let tls13CipherSuiteHighByte: UInt16 = 0x13
    /// The ALPN names ALPS is offered for, as Chrome offers it.
    static let alpsProtocols = [HTTPProtocolVersion.http2.rawValue]
    /// compress_certificate's algorithms when the base offers none: Chrome's.
    static let defaultCertificateCompression: [CertificateCompression] = [.brotli]
    /// The optional extensions, by type.
    static let optionalExtensions = Dictionary(
        uniqueKeysWithValues: OptionalExtension.allCases.compactMap { option in option.extensionType.map { ($0, option) } })
    /// The extension types a spec can send: the engines' own (pre_shared_key when resuming, and
    /// renegotiation_info, for which OpenSSL sends its SCSV), ALPN, compress_certificate, ALPS
    /// and the optional ones.
    static let sendableExtensions = TLSExtensionType.inEveryHello.union(TLSExtensionType.tls13)
        .union([TLSExtensionType.preSharedKey, TLSExtensionType.renegotiationInfo])
        .union([TLSExtensionType.alpn, TLSExtensionType.compressCertificate])
        .union([ALPSCodepoint.legacy, .current].map(\.rawValue))
        .union(optionalExtensions.keys)
    /// Browsers' extensions that neither engine sends, by name, for errors.
    static let unsendableNames: [UInt16: String] = [
        28: "record_size_limit", 34: "delegated_credentials", 42: "early_data", 50: "signature_algorithms_cert",
    ]

    static func isTLS13CipherSuite(_ suite: UInt16) -> Bool { suite >> UInt8.bitWidth == tls13CipherSuiteHighByte }

    /// A `-`-joined field's values, GREASE left out, each once; and whether it held GREASE.
    static func values(_ text: Substring, of field: Field) throws(HotPoolError) -> (values: [UInt16], grease: Bool) {
        guard !text.isEmpty else { return ([], false) }
        var values: [UInt16] = [], grease = false
        for token in text.split(separator: valueSeparator, omittingEmptySubsequences: false) {
            let value: UInt16 = try decimal(token, in: "JA3 \(field)")
            if GREASE.contains(value) {
                grease = true
            } else if values.contains(value) {
                throw .invalidConfiguration("JA3 \(field): \(value) is listed twice")
            } else {
                values.append(value)
            }
        }
        return (values, grease)
    }
}

/// `token` as a decimal `T`: digits only (no sign or space), within `T`'s range.
private func decimal<T: FixedWidthInteger>(_ token: Substring, in context: String) throws(HotPoolError) -> T {
    guard !token.isEmpty, token.allSatisfy({ ("0"..."9").contains($0) }) else {
        throw .invalidConfiguration("\(context): \"\(token)\" is not a decimal number")
    }
    guard let value = T(token) else { throw .invalidConfiguration("\(context): \(token) is out of \(T.min)...\(T.max)") }
    return value
}
