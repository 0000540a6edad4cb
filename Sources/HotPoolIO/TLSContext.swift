import CShims
import HotPoolCore

/// Builds OpenSSL client contexts shaped by fingerprint specs.
package enum TLSContext {
    /// The GREASE code points of RFC 8701 (0x0a0a, 0x1a1a, ... 0xfafa).
    static let greaseValues: [UInt16] = (0..<16).map { UInt16($0) << 12 | 0x0a00 | UInt16($0) << 4 | 0x0a }

    /// SSL objects alive in the process (created minus freed).
    package static var liveObjects: Int { Int(hp_tls_live_objects()) }

    /// A verifying client context (trusting `trustedCAFile`, or the system store) with `spec` applied.
    package static func make(_ spec: FingerprintSpec, trustedCAFile: String?) throws(HotPoolError) -> OpaquePointer {
        var message = [CChar](repeating: 0, count: 256)
        guard let context = hp_tls_ctx_new(1, trustedCAFile, &message, message.count) else {
            throw .invalidConfiguration("TLS context: \(String(nulTerminated: message))")
        }
        do {
            try apply(spec, to: context)
            return context
        } catch {
            hp_tls_ctx_free(context)
            throw error
        }
    }

    private static func apply(_ spec: FingerprintSpec, to context: OpaquePointer) throws(HotPoolError) {
        let tls13 = try OpenSSLNames.list(spec.tls13CipherSuites, in: OpenSSLNames.tls13Ciphers, what: "TLS 1.3 cipher suite")
        let tls12 = try OpenSSLNames.list(spec.tls12CipherSuites, in: OpenSSLNames.tls12Ciphers, what: "TLS 1.2 cipher suite")
        let groups = try OpenSSLNames.list(spec.supportedGroups, in: OpenSSLNames.groups, what: "group")
        let sigalgs = try OpenSSLNames.list(spec.signatureAlgorithms, in: OpenSSLNames.signatureAlgorithms, what: "signature algorithm")
        var alpn: [UInt8] = []
        for name in spec.alpn {
            guard (1...255).contains(name.utf8.count) else { throw .invalidConfiguration("ALPN name \"\(name)\"") }
            alpn.append(UInt8(name.utf8.count))
            alpn.append(contentsOf: name.utf8)
        }
        guard spec.minVersion.rawValue <= spec.maxVersion.rawValue else {
            throw .invalidConfiguration("minVersion above maxVersion in profile \(spec.name)")
        }
        var message = [CChar](repeating: 0, count: 256)
        let rc = tls13.withCString { tls13 in
            tls12.withCString { tls12 in
                groups.withCString { groups in
                    sigalgs.withCString { sigalgs in
                        alpn.withUnsafeBufferPointer { alpn in
                            var profile = hp_tls_profile(
                                tls13_ciphersuites: tls13, tls12_cipher_list: tls12, groups: groups, sigalgs: sigalgs,
                                alpn: alpn.baseAddress, alpn_len: UInt32(alpn.count),
                                min_version: Int32(spec.minVersion.rawValue), max_version: Int32(spec.maxVersion.rawValue),
                                status_request: flag(spec, .statusRequest),
                                signed_certificate_timestamp: flag(spec, .signedCertificateTimestamp),
                                session_ticket: flag(spec, .sessionTicket), padding: flag(spec, .padding),
                                encrypt_then_mac: flag(spec, .encryptThenMAC))
                            return hp_tls_ctx_apply_profile(context, &profile, &message, message.count)
                        }
                    }
                }
            }
        }
        guard rc == 0 else {
            throw .invalidConfiguration("profile \(spec.name): \(String(nulTerminated: message))")
        }
        var extensions: [(UInt32, Int32)] = []
        if spec.extensions.contains(.grease) {
            // Two distinct GREASE types, fixed per context (JA3 and JA4 leave GREASE out).
            let picked = greaseValues.shuffled().prefix(2)
            extensions.append((UInt32(picked.first!), HP_EXT_EMPTY))
            extensions.append((UInt32(picked.last!), HP_EXT_ONE_ZERO))
        }
        if spec.extensions.contains(.echGrease) { extensions.append((0xfe0d, HP_EXT_ECH_GREASE)) }
        for (type, payload) in extensions where hp_tls_ctx_add_extension(context, type, payload) != 0 {
            throw .invalidConfiguration("profile \(spec.name): cannot add extension 0x\(String(type, radix: 16))")
        }
    }

    private static func flag(_ spec: FingerprintSpec, _ option: OptionalExtension) -> Int32 {
        spec.extensions.contains(option) ? 1 : 0
    }
}
