/// The browser presets, as curl-impersonate's targets of the same versions send them: the
/// ClientHello (built by BoringSSL), the HTTP/2 preface and header order, and the HTTP/1.1
/// headers, User-Agent and client hints of that version. README.md's preset table gives each
/// one's JA4, JA4_r and Akamai fingerprint against the browser's, measured, and every difference
/// with its reason.
extension FingerprintSpec {
    /// Chrome 150 on macOS.
    public static let chrome = chrome(
        version: 150, brands: #""Not;A=Brand";v="8", "Chromium";v="150", "Google Chrome";v="150""#,
        signatureAlgorithms: [0x0904, 0x0905, 0x0906] + chromeSignatureAlgorithms, alps: .current)

    /// Chrome 131 on macOS.
    public static let chrome131 = chrome(
        version: 131, brands: #""Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24""#,
        signatureAlgorithms: chromeSignatureAlgorithms, alps: .legacy)

    /// Chrome 133 on macOS (Chrome 133 to 149 send the same ClientHello).
    public static let chrome133 = chrome(
        version: 133, brands: #""Not(A:Brand";v="99", "Google Chrome";v="133", "Chromium";v="133""#,
        signatureAlgorithms: chromeSignatureAlgorithms, alps: .current)

    /// Safari 26.0.1 on macOS.
    public static let safari = safari(
        name: "safari26.0.1", version: "26.0.1", tls13CipherSuites: [0x1302, 0x1303, 0x1301],
        supportedGroups: [0x11ec, 0x001d, 0x0017, 0x0018, 0x0019], minVersion: .tls12, pads: false,
        // Akamai 2:0;3:100;4:2097152;9:1|10420225|0|m,s,a,p
        http2: HTTP2Fingerprint(
            settings: [HTTP2Setting(2, 0), HTTP2Setting(3, 100), HTTP2Setting(4, 2_097_152), HTTP2Setting(9, 1)],
            connectionWindowIncrement: 10_420_225, headersPriority: nil, pseudoHeaderOrder: safariPseudoHeaderOrder))

    /// Safari 18 on macOS.
    public static let safari18 = safari(
        name: "safari18", version: "18.0", tls13CipherSuites: [0x1301, 0x1302, 0x1303],
        supportedGroups: [0x001d, 0x0017, 0x0018, 0x0019], minVersion: .tls10, pads: true,
        // Akamai 2:0;3:100;4:2097152;8:1;9:1|10420225|0|m,s,a,p
        http2: HTTP2Fingerprint(
            settings: [HTTP2Setting(2, 0), HTTP2Setting(3, 100), HTTP2Setting(4, 2_097_152), HTTP2Setting(8, 1), HTTP2Setting(9, 1)],
            connectionWindowIncrement: 10_420_225, headersPriority: HTTP2Priority(weight: 256, exclusive: false),
            pseudoHeaderOrder: safariPseudoHeaderOrder))

    /// Firefox 147 on macOS, as far as BoringSSL goes: no record_size_limit (28), no
    /// delegated_credentials (34), no FFDHE groups, and BoringSSL's extension order (README.md).
    public static let firefox = FingerprintSpec(
        name: "firefox147",
        tls13CipherSuites: [0x1301, 0x1303, 0x1302],
        tls12CipherSuites: [
            0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
        ],
        supportedGroups: [0x11ec, 0x001d, 0x0017, 0x0018, 0x0019],
        keyShares: [0x11ec, 0x001d, 0x0017],
        signatureAlgorithms: [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201],
        alpn: ["h2", "http/1.1"],
        certificateCompression: [.zlib, .brotli, .zstd],
        extensions: [.statusRequest, .signedCertificateTimestamp, .sessionTicket, .echGrease],
        headers: [
            ProfileHeader("User-Agent", firefoxUserAgent),
            ProfileHeader("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ProfileHeader("Accept-Language", "en-US,en;q=0.9"),
            ProfileHeader("Accept-Encoding", "gzip, deflate, br, zstd"),
            ProfileHeader("Connection", "keep-alive"),
            ProfileHeader("Upgrade-Insecure-Requests", "1"),
            ProfileHeader("Sec-Fetch-Dest", "document"),
            ProfileHeader("Sec-Fetch-Mode", "navigate"),
            ProfileHeader("Sec-Fetch-Site", "none"),
            ProfileHeader("Sec-Fetch-User", "?1"),
            ProfileHeader("Priority", "u=0, i"),
        ],
        acceptLanguages: [
            "en-US,en;q=0.9", "en-GB,en;q=0.5", "de,en-US;q=0.7,en;q=0.3", "fr,fr-FR;q=0.8,en-US;q=0.5,en;q=0.3",
            "es-ES,es;q=0.8,en-US;q=0.5,en;q=0.3", "ja,en-US;q=0.7,en;q=0.3", "zh-CN,zh;q=0.8,zh-TW;q=0.7,en-US;q=0.3,en;q=0.2",
        ],
        // Akamai 1:65536;2:0;4:131072;5:16384|12517377|0|m,p,a,s
        http2: HTTP2Fingerprint(
            settings: [HTTP2Setting(1, 65536), HTTP2Setting(2, 0), HTTP2Setting(4, 131_072), HTTP2Setting(5, 16384)],
            connectionWindowIncrement: 12_517_377,
            headersPriority: HTTP2Priority(weight: 42, exclusive: false),
            pseudoHeaderOrder: [.method, .path, .authority, .scheme],
            headers: [
                ProfileHeader("user-agent", firefoxUserAgent),
                ProfileHeader("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                ProfileHeader("accept-language", "en-US,en;q=0.9"),
                ProfileHeader("accept-encoding", "gzip, deflate, br, zstd"),
                ProfileHeader("upgrade-insecure-requests", "1"),
                ProfileHeader("sec-fetch-dest", "document"),
                ProfileHeader("sec-fetch-mode", "navigate"),
                ProfileHeader("sec-fetch-site", "none"),
                ProfileHeader("sec-fetch-user", "?1"),
                ProfileHeader("priority", "u=0, i"),
                ProfileHeader("te", "trailers"),
            ]))

    /// No browser: OpenSSL's own ClientHello with modern suites and no headers of its own.
    public static let plain = FingerprintSpec(
        name: "plain", engine: .openSSL,
        tls13CipherSuites: [0x1301, 0x1302, 0x1303],
        tls12CipherSuites: [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8],
        supportedGroups: [0x001d, 0x0017, 0x0018],
        signatureAlgorithms: [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601],
        alpn: ["h2", "http/1.1"],
        extensions: [.sessionTicket, .encryptThenMAC])

    // MARK: Chrome

    /// Chrome's signature algorithms before ML-DSA (Chrome 150 puts 0x0904-0x0906 first).
    private static let chromeSignatureAlgorithms: [UInt16] = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]

    /// Chrome `version` on macOS: one ClientHello but for its signature algorithms and ALPS
    /// code point, and one header order.
    private static func chrome(version: Int, brands: String, signatureAlgorithms: [UInt16], alps: ALPSCodepoint) -> FingerprintSpec {
        let userAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/\(version).0.0.0 Safari/537.36"
        let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
        return FingerprintSpec(
            name: "chrome\(version)",
            tls13CipherSuites: [0x1301, 0x1302, 0x1303],
            tls12CipherSuites: [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035],
            supportedGroups: [0x11ec, 0x001d, 0x0017, 0x0018],
            signatureAlgorithms: signatureAlgorithms,
            alpn: ["h2", "http/1.1"],
            applicationSettings: ApplicationSettings(protocols: ["h2"], codepoint: alps),
            certificateCompression: [.brotli],
            extensions: [.statusRequest, .signedCertificateTimestamp, .sessionTicket, .grease, .echGrease],
            permutesExtensions: true,
            headers: [
                ProfileHeader("Connection", "keep-alive"),
                ProfileHeader("sec-ch-ua", brands),
                ProfileHeader("sec-ch-ua-mobile", "?0"),
                ProfileHeader("sec-ch-ua-platform", #""macOS""#),
                ProfileHeader("Upgrade-Insecure-Requests", "1"),
                ProfileHeader("User-Agent", userAgent),
                ProfileHeader("Accept", accept),
                ProfileHeader("Sec-Fetch-Site", "none"),
                ProfileHeader("Sec-Fetch-Mode", "navigate"),
                ProfileHeader("Sec-Fetch-User", "?1"),
                ProfileHeader("Sec-Fetch-Dest", "document"),
                ProfileHeader("Accept-Encoding", "gzip, deflate, br, zstd"),
                ProfileHeader("Accept-Language", "en-US,en;q=0.9"),
            ],
            acceptLanguages: [
                "en-US,en;q=0.9", "en-GB,en-US;q=0.9,en;q=0.8", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
                "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "es-ES,es;q=0.9,en;q=0.8", "ja,en-US;q=0.9,en;q=0.8",
                "zh-CN,zh;q=0.9,en;q=0.8", "pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7",
            ],
            // Akamai 1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p
            http2: HTTP2Fingerprint(
                settings: [HTTP2Setting(1, 65536), HTTP2Setting(2, 0), HTTP2Setting(4, 6_291_456), HTTP2Setting(6, 262_144)],
                connectionWindowIncrement: 15_663_105,
                headersPriority: HTTP2Priority(weight: 256, exclusive: true),
                pseudoHeaderOrder: [.method, .authority, .scheme, .path],
                headers: [
                    ProfileHeader("sec-ch-ua", brands),
                    ProfileHeader("sec-ch-ua-mobile", "?0"),
                    ProfileHeader("sec-ch-ua-platform", #""macOS""#),
                    ProfileHeader("upgrade-insecure-requests", "1"),
                    ProfileHeader("user-agent", userAgent),
                    ProfileHeader("accept", accept),
                    ProfileHeader("sec-fetch-site", "none"),
                    ProfileHeader("sec-fetch-mode", "navigate"),
                    ProfileHeader("sec-fetch-user", "?1"),
                    ProfileHeader("sec-fetch-dest", "document"),
                    ProfileHeader("accept-encoding", "gzip, deflate, br, zstd"),
                    ProfileHeader("accept-language", "en-US,en;q=0.9"),
                    ProfileHeader("priority", "u=0, i"),
                ]))
    }

    // MARK: Safari

    private static let safariPseudoHeaderOrder: [HTTP2PseudoHeader] = [.method, .scheme, .authority, .path]

    /// Safari `version` on macOS: one ClientHello but for its TLS 1.3 suites' order, groups and
    /// lowest version, one header order, and its own HTTP/2 preface.
    private static func safari(
        name: String, version: String, tls13CipherSuites: [UInt16], supportedGroups: [UInt16], minVersion: TLSVersion,
        pads: Bool, http2: HTTP2Fingerprint
    ) -> FingerprintSpec {
        let userAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/\(version) Safari/605.1.15"
        let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        var http2 = http2
        http2.headers = [
            ProfileHeader("sec-fetch-dest", "document"),
            ProfileHeader("user-agent", userAgent),
            ProfileHeader("accept", accept),
            ProfileHeader("sec-fetch-site", "none"),
            ProfileHeader("sec-fetch-mode", "navigate"),
            ProfileHeader("accept-language", "en-US,en;q=0.9"),
            ProfileHeader("priority", "u=0, i"),
            ProfileHeader("accept-encoding", "gzip, deflate, br"),
        ]
        return FingerprintSpec(
            name: name,
            tls13CipherSuites: tls13CipherSuites,
            // 0xc008 and 0xc012 (ECDHE with 3DES) are offered only: BoringSSL no longer implements them.
            tls12CipherSuites: [
                0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x0035, 0x002f,
                0xc008, 0xc012, 0x000a,
            ],
            supportedGroups: supportedGroups,
            // Safari lists 0x0805 twice.
            signatureAlgorithms: [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201],
            alpn: ["h2", "http/1.1"],
            certificateCompression: [.zlib],
            extensions: Set<OptionalExtension>([.statusRequest, .signedCertificateTimestamp, .grease]).union(pads ? [.padding] : []),
            minVersion: minVersion,
            headers: [
                ProfileHeader("Accept", accept),
                ProfileHeader("Sec-Fetch-Site", "none"),
                ProfileHeader("Accept-Encoding", "gzip, deflate, br"),
                ProfileHeader("Sec-Fetch-Mode", "navigate"),
                ProfileHeader("User-Agent", userAgent),
                ProfileHeader("Accept-Language", "en-US,en;q=0.9"),
                ProfileHeader("Sec-Fetch-Dest", "document"),
                ProfileHeader("Connection", "keep-alive"),
            ],
            acceptLanguages: [
                "en-US,en;q=0.9", "en-GB,en;q=0.9", "de-DE,de;q=0.9", "fr-FR,fr;q=0.9", "ja-JP,ja;q=0.9", "zh-CN,zh-Hans;q=0.9",
            ],
            http2: http2)
    }

    // MARK: Firefox

    private static let firefoxUserAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:147.0) Gecko/20100101 Firefox/147.0"
}
