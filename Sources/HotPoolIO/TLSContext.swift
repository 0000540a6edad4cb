import CShims
import HotPoolCore

/// Builds client contexts shaped by fingerprint specs, on the spec's engine: BoringSSL for the
/// browser presets, OpenSSL 3.0 for the plain one.
package enum TLSContext {
    /// The TLS 1.3 cipher suites BoringSSL sends, always all three.
    static let boringSSLTLS13CipherSuites: Set<UInt16> = [0x1301, 0x1302, 0x1303]

    /// SSL objects alive in the process (created minus freed).
    package static var liveObjects: Int { Int(hp_tls_live_objects()) }

    /// A verifying client context (trusting `trustedCAFile`, or the system store) with `spec` applied.
    /// - Throws: `HotPoolError.invalidConfiguration` for what the spec's engine cannot send.
    package static func make(_ spec: FingerprintSpec, trustedCAFile: String?) throws(HotPoolError) -> OpaquePointer {
        guard spec.minVersion.rawValue <= spec.maxVersion.rawValue else {
            throw .invalidConfiguration("minVersion above maxVersion in profile \(spec.name)")
        }
        let alpn = try wireFormat(spec.alpn)
        var message = [CChar](repeating: 0, count: 256)
        let context = switch spec.engine {
        case .boringSSL: try boringSSL(spec, alpn: alpn, trustedCAFile: trustedCAFile, message: &message)
        case .openSSL: try openSSL(spec, alpn: alpn, trustedCAFile: trustedCAFile, message: &message)
        }
        guard let context else { throw .invalidConfiguration("profile \(spec.name): \(String(nulTerminated: message))") }
        return context
    }

    /// Protocol names as TLS lists them: each a length byte, then its bytes.
    private static func wireFormat(_ names: [String]) throws(HotPoolError) -> [UInt8] {
        var bytes: [UInt8] = []
        for name in names {
            guard (1...255).contains(name.utf8.count) else { throw .invalidConfiguration("ALPN name \"\(name)\"") }
            bytes.append(UInt8(name.utf8.count))
            bytes.append(contentsOf: name.utf8)
        }
        return bytes
    }

    private static func boringSSL(
        _ spec: FingerprintSpec, alpn: [UInt8], trustedCAFile: String?, message: inout [CChar]
    ) throws(HotPoolError) -> OpaquePointer? {
        if spec.maxVersion == .tls13 && (Set(spec.tls13CipherSuites) != boringSSLTLS13CipherSuites || spec.tls13CipherSuites.count != 3) {
            throw .invalidConfiguration("profile \(spec.name): BoringSSL sends the TLS 1.3 cipher suites 0x1301, 0x1302 and 0x1303, all three")
        }
        // OpenSSL's option: BoringSSL has no encrypt_then_mac.
        if spec.extensions.contains(.encryptThenMAC) {
            throw .invalidConfiguration("profile \(spec.name): BoringSSL does not send \(OptionalExtension.encryptThenMAC)")
        }
        // BoringSSL pads by itself after an empty last extension, which permuted extensions can
        // put last when no GREASE extension (never empty, and last) follows: padding twice.
        if spec.extensions.contains(.padding) && spec.permutesExtensions && !spec.extensions.contains(.grease) {
            throw .invalidConfiguration(
                "profile \(spec.name): BoringSSL sends padding with permuted extensions only with GREASE (else it could pad twice)")
        }
        let alps = try wireFormat(spec.applicationSettings?.protocols ?? [])
        let compression = spec.certificateCompression.map(\.rawValue)
        let flag = { (option: OptionalExtension) -> Int32 in spec.extensions.contains(option) ? 1 : 0 }
        return spec.tls12CipherSuites.withUnsafeBufferPointer { ciphers in
            spec.supportedGroups.withUnsafeBufferPointer { groups in
                spec.keyShares.withUnsafeBufferPointer { keyShares in
                    spec.signatureAlgorithms.withUnsafeBufferPointer { sigalgs in
                        compression.withUnsafeBufferPointer { compression in
                            alpn.withUnsafeBufferPointer { alpn in
                                alps.withUnsafeBufferPointer { alps in
                                    var profile = hp_boringssl_profile(
                                        tls12_ciphers: ciphers.baseAddress, tls12_cipher_count: ciphers.count,
                                        groups: groups.baseAddress, group_count: groups.count,
                                        key_shares: keyShares.baseAddress, key_share_count: keyShares.count,
                                        sigalgs: sigalgs.baseAddress, sigalg_count: sigalgs.count,
                                        cert_compression: compression.baseAddress, cert_compression_count: compression.count,
                                        alpn: alpn.baseAddress, alpn_len: UInt32(alpn.count),
                                        alps: alps.baseAddress, alps_len: UInt32(alps.count),
                                        alps_new_codepoint: spec.applicationSettings?.codepoint == .current ? 1 : 0,
                                        min_version: Int32(spec.minVersion.rawValue), max_version: Int32(spec.maxVersion.rawValue),
                                        grease: flag(.grease), permute_extensions: spec.permutesExtensions ? 1 : 0,
                                        ech_grease: flag(.echGrease), status_request: flag(.statusRequest),
                                        signed_certificate_timestamp: flag(.signedCertificateTimestamp),
                                        session_ticket: flag(.sessionTicket), padding: flag(.padding))
                                    return hp_boringssl_ctx_new(&profile, 1, trustedCAFile, &message, message.count)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private static func openSSL(
        _ spec: FingerprintSpec, alpn: [UInt8], trustedCAFile: String?, message: inout [CChar]
    ) throws(HotPoolError) -> OpaquePointer? {
        let boringSSLOnly = [
            ("key shares", !spec.keyShares.isEmpty), ("ALPS", spec.applicationSettings != nil),
            ("certificate compression", !spec.certificateCompression.isEmpty), ("extension permutation", spec.permutesExtensions),
        ]
        if let (feature, _) = boringSSLOnly.first(where: { $0.1 }) {
            throw .invalidConfiguration("profile \(spec.name): \(feature) needs the BoringSSL engine")
        }
        let tls13 = try OpenSSLNames.list(spec.tls13CipherSuites, in: OpenSSLNames.tls13Ciphers, what: "TLS 1.3 cipher suite")
        let tls12 = try OpenSSLNames.list(spec.tls12CipherSuites, in: OpenSSLNames.tls12Ciphers, what: "TLS 1.2 cipher suite")
        let groups = try OpenSSLNames.list(spec.supportedGroups, in: OpenSSLNames.groups, what: "group")
        let sigalgs = try OpenSSLNames.list(spec.signatureAlgorithms, in: OpenSSLNames.signatureAlgorithms, what: "signature algorithm")
        let flag = { (option: OptionalExtension) -> Int32 in spec.extensions.contains(option) ? 1 : 0 }
        let context = tls13.withCString { tls13 in
            tls12.withCString { tls12 in
                groups.withCString { groups in
                    sigalgs.withCString { sigalgs in
                        alpn.withUnsafeBufferPointer { alpn in
                            var profile = hp_tls_profile(
                                tls13_ciphersuites: tls13, tls12_cipher_list: tls12, groups: groups, sigalgs: sigalgs,
                                alpn: alpn.baseAddress, alpn_len: UInt32(alpn.count),
                                min_version: Int32(spec.minVersion.rawValue), max_version: Int32(spec.maxVersion.rawValue),
                                status_request: flag(.statusRequest), signed_certificate_timestamp: flag(.signedCertificateTimestamp),
                                session_ticket: flag(.sessionTicket), padding: flag(.padding), encrypt_then_mac: flag(.encryptThenMAC))
                            return hp_openssl_ctx_new(&profile, 1, trustedCAFile, &message, message.count)
                        }
                    }
                }
            }
        }
        guard let context else { return nil }
        var extensions: [(UInt32, Int32)] = []
        if spec.extensions.contains(.grease) {
            // Two distinct GREASE types, fixed per context (JA3 and JA4 leave GREASE out).
            let picked = GREASE.values.shuffled().prefix(2)
            extensions.append((UInt32(picked.first!), HP_EXT_EMPTY))
            extensions.append((UInt32(picked.last!), HP_EXT_ONE_ZERO))
        }
        if spec.extensions.contains(.echGrease) { extensions.append((0xfe0d, HP_EXT_ECH_GREASE)) }
        for (type, payload) in extensions where hp_openssl_ctx_add_extension(context, type, payload) != 0 {
            hp_tls_ctx_free(context)
            throw .invalidConfiguration("profile \(spec.name): cannot add extension 0x\(String(type, radix: 16))")
        }
        return context
    }
}
