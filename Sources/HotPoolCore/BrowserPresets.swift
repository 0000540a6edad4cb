/// The browser presets. Each follows the browser's published ClientHello, HTTP/1.1 request
/// headers and HTTP/2 preface and headers as closely as OpenSSL 3.0 and nghttp2 allow; docs/fingerprints.md
/// lists every difference and its reason, and the sources of the HTTP/2 shapes.
extension FingerprintSpec {
    /// Chrome 131 on Windows.
    public static let chrome = FingerprintSpec(
        name: "chrome",
        tls13CipherSuites: [0x1301, 0x1302, 0x1303],
        tls12CipherSuites: [0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035],
        supportedGroups: [0x001d, 0x0017, 0x0018],
        signatureAlgorithms: [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601],
        alpn: ["h2", "http/1.1"],
        extensions: [.statusRequest, .signedCertificateTimestamp, .sessionTicket, .grease, .echGrease],
        headers: [
            ProfileHeader("Connection", "keep-alive"),
            ProfileHeader("sec-ch-ua", #""Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24""#),
            ProfileHeader("sec-ch-ua-mobile", "?0"),
            ProfileHeader("sec-ch-ua-platform", #""Windows""#),
            ProfileHeader("Upgrade-Insecure-Requests", "1"),
            ProfileHeader("User-Agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
            ProfileHeader("Accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"),
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
                ProfileHeader("sec-ch-ua", #""Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24""#),
                ProfileHeader("sec-ch-ua-mobile", "?0"),
                ProfileHeader("sec-ch-ua-platform", #""Windows""#),
                ProfileHeader("upgrade-insecure-requests", "1"),
                ProfileHeader("user-agent",
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
                ProfileHeader("accept",
                    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"),
                ProfileHeader("sec-fetch-site", "none"),
                ProfileHeader("sec-fetch-mode", "navigate"),
                ProfileHeader("sec-fetch-user", "?1"),
                ProfileHeader("sec-fetch-dest", "document"),
                ProfileHeader("accept-encoding", "gzip, deflate, br, zstd"),
                ProfileHeader("accept-language", "en-US,en;q=0.9"),
                ProfileHeader("priority", "u=0, i"),
            ]))

    /// Firefox 133 on Windows.
    public static let firefox = FingerprintSpec(
        name: "firefox",
        tls13CipherSuites: [0x1301, 0x1303, 0x1302],
        tls12CipherSuites: [
            0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
        ],
        supportedGroups: [0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101],
        signatureAlgorithms: [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601],
        alpn: ["h2", "http/1.1"],
        extensions: [.statusRequest, .sessionTicket, .echGrease],
        headers: [
            ProfileHeader("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
            ProfileHeader("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ProfileHeader("Accept-Language", "en-US,en;q=0.5"),
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
            "en-US,en;q=0.5", "en-GB,en;q=0.5", "de,en-US;q=0.7,en;q=0.3", "fr,fr-FR;q=0.8,en-US;q=0.5,en;q=0.3",
            "es-ES,es;q=0.8,en-US;q=0.5,en;q=0.3", "ja,en-US;q=0.7,en;q=0.3", "zh-CN,zh;q=0.8,zh-TW;q=0.7,en-US;q=0.3,en;q=0.2",
        ],
        // Akamai 1:65536;2:0;4:131072;5:16384|12517377|0|m,p,a,s
        http2: HTTP2Fingerprint(
            settings: [HTTP2Setting(1, 65536), HTTP2Setting(2, 0), HTTP2Setting(4, 131_072), HTTP2Setting(5, 16384)],
            connectionWindowIncrement: 12_517_377,
            headersPriority: HTTP2Priority(weight: 42, exclusive: false),
            pseudoHeaderOrder: [.method, .path, .authority, .scheme],
            headers: [
                ProfileHeader("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"),
                ProfileHeader("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                ProfileHeader("accept-language", "en-US,en;q=0.5"),
                ProfileHeader("accept-encoding", "gzip, deflate, br, zstd"),
                ProfileHeader("upgrade-insecure-requests", "1"),
                ProfileHeader("sec-fetch-dest", "document"),
                ProfileHeader("sec-fetch-mode", "navigate"),
                ProfileHeader("sec-fetch-site", "none"),
                ProfileHeader("sec-fetch-user", "?1"),
                ProfileHeader("priority", "u=0, i"),
                ProfileHeader("te", "trailers"),
            ]))

    /// Safari 18 on macOS.
    public static let safari = FingerprintSpec(
        name: "safari",
        tls13CipherSuites: [0x1301, 0x1302, 0x1303],
        tls12CipherSuites: [
            0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x0035, 0x002f,
        ],
        supportedGroups: [0x001d, 0x0017, 0x0018, 0x0019],
        signatureAlgorithms: [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601],
        alpn: ["h2", "http/1.1"],
        extensions: [.statusRequest, .signedCertificateTimestamp, .padding, .grease],
        headers: [
            ProfileHeader("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ProfileHeader("Sec-Fetch-Site", "none"),
            ProfileHeader("Accept-Encoding", "gzip, deflate, br"),
            ProfileHeader("Sec-Fetch-Mode", "navigate"),
            ProfileHeader("User-Agent",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"),
            ProfileHeader("Accept-Language", "en-US,en;q=0.9"),
            ProfileHeader("Sec-Fetch-Dest", "document"),
            ProfileHeader("Connection", "keep-alive"),
        ],
        acceptLanguages: [
            "en-US,en;q=0.9", "en-GB,en;q=0.9", "de-DE,de;q=0.9", "fr-FR,fr;q=0.9", "ja-JP,ja;q=0.9", "zh-CN,zh-Hans;q=0.9",
        ],
        // Akamai 2:0;3:100;4:2097152;9:1|10420225|0|m,s,a,p
        http2: HTTP2Fingerprint(
            settings: [HTTP2Setting(2, 0), HTTP2Setting(3, 100), HTTP2Setting(4, 2_097_152), HTTP2Setting(9, 1)],
            connectionWindowIncrement: 10_420_225,
            headersPriority: HTTP2Priority(weight: 256, exclusive: false),
            pseudoHeaderOrder: [.method, .scheme, .authority, .path],
            headers: [
                ProfileHeader("sec-fetch-dest", "document"),
                ProfileHeader("user-agent",
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"),
                ProfileHeader("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                ProfileHeader("sec-fetch-site", "none"),
                ProfileHeader("sec-fetch-mode", "navigate"),
                ProfileHeader("accept-language", "en-US,en;q=0.9"),
                ProfileHeader("priority", "u=0, i"),
                ProfileHeader("accept-encoding", "gzip, deflate, br"),
            ]))
}
