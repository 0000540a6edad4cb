import HotPoolCore

/// IANA code points to the names OpenSSL's list-setting calls take.
enum OpenSSLNames {
    static let tls13Ciphers: [UInt16: String] = [
        0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    ]

    static let tls12Ciphers: [UInt16: String] = [
        0xc02b: "ECDHE-ECDSA-AES128-GCM-SHA256", 0xc02f: "ECDHE-RSA-AES128-GCM-SHA256",
        0xc02c: "ECDHE-ECDSA-AES256-GCM-SHA384", 0xc030: "ECDHE-RSA-AES256-GCM-SHA384",
        0xcca9: "ECDHE-ECDSA-CHACHA20-POLY1305", 0xcca8: "ECDHE-RSA-CHACHA20-POLY1305",
        0xc009: "ECDHE-ECDSA-AES128-SHA", 0xc00a: "ECDHE-ECDSA-AES256-SHA",
        0xc013: "ECDHE-RSA-AES128-SHA", 0xc014: "ECDHE-RSA-AES256-SHA",
        0x009c: "AES128-GCM-SHA256", 0x009d: "AES256-GCM-SHA384", 0x002f: "AES128-SHA", 0x0035: "AES256-SHA",
        0xc008: "ECDHE-ECDSA-DES-CBC3-SHA", 0xc012: "ECDHE-RSA-DES-CBC3-SHA", 0x000a: "DES-CBC3-SHA",
    ]

    static let groups: [UInt16: String] = [
        0x001d: "X25519", 0x001e: "X448", 0x0017: "P-256", 0x0018: "P-384", 0x0019: "P-521",
        0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096",
    ]

    static let signatureAlgorithms: [UInt16: String] = [
        0x0403: "ECDSA+SHA256", 0x0503: "ECDSA+SHA384", 0x0603: "ECDSA+SHA512", 0x0203: "ECDSA+SHA1",
        0x0804: "rsa_pss_rsae_sha256", 0x0805: "rsa_pss_rsae_sha384", 0x0806: "rsa_pss_rsae_sha512",
        0x0809: "rsa_pss_pss_sha256", 0x080a: "rsa_pss_pss_sha384", 0x080b: "rsa_pss_pss_sha512",
        0x0401: "RSA+SHA256", 0x0501: "RSA+SHA384", 0x0601: "RSA+SHA512", 0x0201: "RSA+SHA1",
        0x0807: "ed25519", 0x0808: "ed448",
    ]

    /// `codes` as a ':'-joined OpenSSL list; throws for a code point OpenSSL cannot name.
    static func list(_ codes: [UInt16], in table: [UInt16: String], what: String) throws(HotPoolError) -> String {
        var names: [String] = []
        for code in codes {
            guard let name = table[code] else {
                throw .invalidConfiguration("\(what) 0x\(String(code, radix: 16)) is not supported by OpenSSL 3.0")
            }
            names.append(name)
        }
        return names.joined(separator: ":")
    }
}
