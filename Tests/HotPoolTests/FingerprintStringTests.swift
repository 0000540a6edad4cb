import Testing
@testable import HotPoolCore

/// Fingerprints from the strings other clients take: a JA3 string for the ClientHello and an
/// Akamai string for the HTTP/2 preface, read into a spec's fields; a string HotPool cannot send
/// is refused, naming what is wrong.
@Suite struct FingerprintStringTests {
    /// Chrome's JA3 as JA3 tools print it (GREASE left out; padding, before post-quantum groups).
    static let chromeJA3 = """
        771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
        0-23-65281-10-11-35-16-5-13-18-51-45-43-27-17513-21,29-23-24,0
        """
    /// Firefox 147's JA3 as BoringSSL can send it (no record_size_limit, delegated_credentials).
    static let firefoxJA3 = """
        771,4865-4867-4866-49195-49199-52393-52392-49196-49200-49162-49161-49171-49172-156-157-47-53,\
        0-23-65281-10-11-35-16-5-13-18-51-45-43-27-65037,4588-29-23-24-25,0
        """
    /// Chrome 131's JA3 with its GREASE values (0x0a0a, 0x1a1a, 0xfafa) left in.
    static let chrome131JA3 = """
        771,2570-4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,\
        2570-0-23-65281-10-11-35-16-5-13-18-51-45-43-27-17513-65037-6682,64250-4588-29-23-24,0
        """
    static let presets: [FingerprintProfile] = [.chrome, .chrome131, .chrome133, .firefox, .safari, .safari18, .plain]

    /// A JA3 field's values, in order.
    private static func field(_ index: Int, of ja3: String) -> [UInt16] {
        ja3.split(separator: ",", omittingEmptySubsequences: false)[index].split(separator: "-").compactMap { UInt16($0) }
    }

    // MARK: JA3

    @Test func chromesJA3GivesItsSuitesGroupsAndExtensionsAndTheRestFromTheBase() throws {
        let spec = try FingerprintSpec(ja3: Self.chromeJA3)
        let chrome = FingerprintSpec.chrome
        #expect(spec.name == "ja3")
        #expect(spec.tls13CipherSuites == [0x1301, 0x1302, 0x1303])
        #expect(spec.tls12CipherSuites == chrome.tls12CipherSuites)
        #expect(spec.supportedGroups == [0x001d, 0x0017, 0x0018])
        #expect(spec.keyShares.isEmpty)
        #expect(spec.alpn == chrome.alpn)
        #expect(spec.applicationSettings == ApplicationSettings(protocols: ["h2"], codepoint: .legacy))
        #expect(spec.certificateCompression == [.brotli])
        #expect(spec.extensions == [.statusRequest, .signedCertificateTimestamp, .sessionTicket, .padding])
        #expect(spec.minVersion == .tls12 && spec.maxVersion == .tls13)
        #expect(spec.engine == chrome.engine && spec.signatureAlgorithms == chrome.signatureAlgorithms)
        #expect(spec.permutesExtensions == chrome.permutesExtensions && spec.resumesSessions == chrome.resumesSessions)
        #expect(spec.headers == chrome.headers && spec.acceptLanguages == chrome.acceptLanguages && spec.http2 == chrome.http2)
    }

    /// What the spec says its ClientHello carries is what the JA3 lists (GREASE aside), its
    /// extensions as a set: JA3's extension order is not kept.
    @Test(arguments: [chromeJA3, firefoxJA3, chrome131JA3])
    func theSpecAdvertisesTheJA3sSuitesAndExtensions(ja3: String) throws {
        let spec = try FingerprintSpec(ja3: ja3)
        #expect(spec.advertisedCipherSuites == Self.field(1, of: ja3).filter { !GREASE.contains($0) })
        #expect(spec.advertisedExtensions == Self.field(2, of: ja3).filter { !GREASE.contains($0) }.sorted())
    }

    /// A preset's JA3 and Akamai string over the preset give the preset back.
    @Test(arguments: [
        (FingerprintProfile.firefox, firefoxJA3),
        (.chrome131, chrome131JA3),
        (.chrome, chrome131JA3.replacing("-17513-", with: "-17613-")),
    ])
    func aPresetIsReadBackFromItsJA3AndAkamai(profile: FingerprintProfile, ja3: String) throws {
        let preset = profile.spec
        #expect(try FingerprintSpec(ja3: ja3, akamai: preset.http2.akamai, name: preset.name, base: preset) == preset)
    }

    @Test func greaseAnywhereIsLeftOutAndTurnsOnGREASE() throws {
        let plain = try FingerprintSpec(ja3: "771,4865-4866-4867,0,29,0", base: .plain)
        #expect(!plain.extensions.contains(.grease))
        for ja3 in ["771,2570-4865-4866-4867,0,29,0", "771,4865-4866-4867,64250-0-2570,29,0", "771,4865-4866-4867,0,6682-29-6682,0"] {
            let spec = try FingerprintSpec(ja3: ja3, base: .plain)
            #expect(spec.extensions == [.grease], "\(ja3)")
            #expect(spec.tls13CipherSuites == plain.tls13CipherSuites && spec.supportedGroups == plain.supportedGroups, "\(ja3)")
        }
        let grease = (0..<16).map { UInt16($0) << 12 | 0x0a00 | UInt16($0) << 4 | 0x0a }
        #expect(grease.first == 0x0a0a && grease.last == 0xfafa && grease.allSatisfy(GREASE.contains))
        #expect(![0x0a1a, 0x1a0a, 0x0a0b, 0x0b0b, 0xabab, 0x0000, 0x1301].contains(where: GREASE.contains))
    }

    @Test func theVersionIsTheHighestUnlessSupportedVersionsIsListed() throws {
        let tls12 = try FingerprintSpec(ja3: "771,49195,0-10,29,0")
        #expect(tls12.minVersion == .tls12 && tls12.maxVersion == .tls12)
        let tls10 = try FingerprintSpec(ja3: "769,49195,0-10,29,0")
        #expect(tls10.minVersion == .tls10 && tls10.maxVersion == .tls10, "base's minVersion lowered to the highest")
        let tls13 = try FingerprintSpec(ja3: "771,4865-4866-4867,0-43,29,0", base: .safari18)
        #expect(tls13.minVersion == .tls10 && tls13.maxVersion == .tls13)
    }

    @Test func extensionsThatTakeDataTakeItFromTheBase() throws {
        let plain = try FingerprintSpec(ja3: "771,4865-4866-4867,0-16-27-21-22-65037,29-23,0", base: .plain)
        #expect(plain.engine == .openSSL && plain.alpn == FingerprintSpec.plain.alpn)
        #expect(plain.certificateCompression == [.brotli], "base has none")
        #expect(plain.extensions == [.padding, .encryptThenMAC, .echGrease])
        let firefox = try FingerprintSpec(ja3: "771,4865-4866-4867,0-27-17613,29-23,0", base: .firefox)
        #expect(firefox.alpn.isEmpty, "no ALPN (16)")
        #expect(firefox.certificateCompression == FingerprintSpec.firefox.certificateCompression)
        #expect(firefox.applicationSettings == ApplicationSettings(protocols: ["h2"], codepoint: .current))
        #expect(firefox.keyShares.isEmpty, "firefox's key share 0x11ec is not among the curves")
        #expect(try FingerprintSpec(ja3: Self.firefoxJA3, base: .firefox).keyShares == FingerprintSpec.firefox.keyShares)
    }

    @Test(arguments: [
        ("771,4865,0,29", #"JA3 "771,4865,0,29": 4 fields, not the 5 of version, cipher suites, extensions, elliptic curves, point formats"#),
        ("771,4865,0,29,0,0", #"JA3 "771,4865,0,29,0,0": 6 fields, not the 5 of version, cipher suites, extensions, elliptic curves, point formats"#),
        ("771,4865-TLS_AES,0,29,0", #"JA3 cipher suites: "TLS_AES" is not a decimal number"#),
        ("771,4865--4866,0,29,0", #"JA3 cipher suites: "" is not a decimal number"#),
        ("771,4865,0,+29,0", #"JA3 elliptic curves: "+29" is not a decimal number"#),
        ("0x303,4865,0,29,0", #"JA3 version: "0x303" is not a decimal number"#),
        ("771,4865-65536,0,29,0", "JA3 cipher suites: 65536 is out of 0...65535"),
        ("771,4865,0-99999999999999999999,29,0", "JA3 extensions: 99999999999999999999 is out of 0...65535"),
        ("768,4865,0,29,0", "JA3 version: 768 is not 769...772 (TLS 1.0 to 1.3)"),
        ("773,4865,0,29,0", "JA3 version: 773 is not 769...772 (TLS 1.0 to 1.3)"),
        ("771,4865,0,29,1", #"JA3 point formats: "1": the engines send only uncompressed points (0)"#),
        ("771,4865,0,29,0-1-2", #"JA3 point formats: "0-1-2": the engines send only uncompressed points (0)"#),
        ("771,4865,0,29,2570", #"JA3 point formats: "2570": the engines send only uncompressed points (0)"#),
        ("771,4865-49195-4865,0,29,0", "JA3 cipher suites: 4865 is listed twice"),
        ("771,4865,0-10-0,29,0", "JA3 extensions: 0 is listed twice"),
        ("771,4865,0,29-23-29,0", "JA3 elliptic curves: 29 is listed twice"),
        ("771,4865,0-28-16-34-50,29,0",
         "JA3 extensions: neither engine can send 28 (record_size_limit), 34 (delegated_credentials), 50 (signature_algorithms_cert)"),
        ("771,4865,0-12345,29,0", "JA3 extensions: neither engine can send 12345"),
        ("771,,0,29,0", #"JA3 cipher suites: "" offers none (GREASE aside)"#),
        ("771,2570-6682,0,29,0", #"JA3 cipher suites: "2570-6682" offers none (GREASE aside)"#),
        ("771,4865,0-17513-17613,29,0", "JA3 extensions: ALPS on two code points (17513, 17613)"),
    ])
    func aBadJA3IsRefusedNamingWhatIsWrong(ja3: String, reason: String) {
        #expect(throws: HotPoolError.invalidConfiguration(reason)) { _ = try FingerprintSpec(ja3: ja3) }
    }

    @Test func theAkamaiStringGivesTheSpecsHTTP2() throws {
        let spec = try FingerprintSpec(ja3: Self.chromeJA3, akamai: "2:0;3:100|00|0|m,s,a,p")
        #expect(spec.http2.settings == [HTTP2Setting(2, 0), HTTP2Setting(3, 100)])
        #expect(spec.http2.connectionWindowIncrement == 0 && spec.http2.pseudoHeaderOrder == [.method, .scheme, .authority, .path])
        #expect(spec.http2.headersPriority == FingerprintSpec.chrome.http2.headersPriority)
        #expect(spec.http2.headers == FingerprintSpec.chrome.http2.headers)
        #expect(throws: HotPoolError.invalidConfiguration(#"Akamai "2:0|00|1|m,a,s,p": PRIORITY "1": HotPool sends no PRIORITY frames, so this part must be 0"#)) {
            _ = try FingerprintSpec(ja3: Self.chromeJA3, akamai: "2:0|00|1|m,a,s,p")
        }
    }

    // MARK: Akamai

    @Test(arguments: presets)
    func everyPresetsAkamaiStringReadsBackToItsHTTP2(profile: FingerprintProfile) throws {
        let http2 = profile.spec.http2
        #expect(try HTTP2Fingerprint(akamai: http2.akamai, base: http2) == http2)
    }

    @Test func anAkamaiStringGivesSettingsWindowAndOrderAndTheRestFromTheBase() throws {
        let chrome = try HTTP2Fingerprint(akamai: "1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p", base: .plain)
        #expect(chrome.settings == FingerprintSpec.chrome.http2.settings)
        #expect(chrome.connectionWindowIncrement == 15_663_105 && chrome.pseudoHeaderOrder == [.method, .authority, .scheme, .path])
        #expect(chrome.headersPriority == nil && chrome.headers.isEmpty, "plain's")
        #expect(try HTTP2Fingerprint(akamai: "2:0|00|0|m,a,s,p", base: .plain) == .plain)
        let none = try HTTP2Fingerprint(akamai: "|00|0|m,p,a,s")
        #expect(none.settings.isEmpty && none.connectionWindowIncrement == 0 && none.pseudoHeaderOrder == [.method, .path, .authority, .scheme])
        #expect(none.headers == FingerprintSpec.chrome.http2.headers, "the default base is Chrome's")
    }

    static let tooManySettings = (1...HTTP2Fingerprint.maxSettings + 1).map { "\($0 + 10):0" }.joined(separator: ";") + "|00|0|m,a,s,p"

    @Test(arguments: [
        ("1:65536|00|0", ": 3 parts, not the 4 of SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order"),
        ("1:65536|00|0|m,a,s,p|", ": 5 parts, not the 4 of SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order"),
        ("1=65536|00|0|m,a,s,p", #": setting "1=65536" is not id:value"#),
        ("1:65536:2|00|0|m,a,s,p", #": setting "1:65536:2" is not id:value"#),
        ("1:65536;|00|0|m,a,s,p", #": setting "" is not id:value"#),
        ("1:x|00|0|m,a,s,p", #", setting "1:x": "x" is not a decimal number"#),
        ("65536:1|00|0|m,a,s,p", #", setting "65536:1": 65536 is out of 0...65535"#),
        ("4:4294967296|00|0|m,a,s,p", #", setting "4:4294967296": 4294967296 is out of 0...4294967295"#),
        (tooManySettings, ": at most 16 HTTP/2 settings"),
        ("1:4096;1:65536|00|0|m,a,s,p", ": HTTP/2 setting SETTINGS_HEADER_TABLE_SIZE (1) is sent twice"),
        ("2:2|00|0|m,a,s,p", ": HTTP/2 setting SETTINGS_ENABLE_PUSH (2) must be within 0...1, got 2"),
        ("2:0|-1|0|m,a,s,p", #", WINDOW_UPDATE: "-1" is not a decimal number"#),
        ("2:0|2147418113|0|m,a,s,p", """
            : the HTTP/2 connection window increment must be within 0...2147418112 (the window, 65535 at first, \
            may not pass 2147483647), got 2147418113
            """),
        ("2:0|00|3:0:0:201,5:0:0:101|m,a,s,p", #": PRIORITY "3:0:0:201,5:0:0:101": HotPool sends no PRIORITY frames, so this part must be 0"#),
        ("2:0|00||m,a,s,p", #": PRIORITY "": HotPool sends no PRIORITY frames, so this part must be 0"#),
        ("2:0|00|0|m,a,a,p", ": the HTTP/2 pseudo-header order must name each of the four once"),
        ("2:0|00|0|m,a,s", ": the HTTP/2 pseudo-header order must name each of the four once"),
        ("2:0|00|0|m,a,s,p,m", ": the HTTP/2 pseudo-header order must name each of the four once"),
        ("2:0|00|0|m,a,s,x", #": "x" is not a pseudo-header letter (m, a, s, p)"#),
        ("2:0|00|0|masp", #": "masp" is not a pseudo-header letter (m, a, s, p)"#),
    ])
    func aBadAkamaiStringIsRefusedNamingWhatIsWrong(akamai: String, reason: String) {
        #expect(throws: HotPoolError.invalidConfiguration("Akamai \"\(akamai)\"\(reason)")) { _ = try HTTP2Fingerprint(akamai: akamai) }
    }
}
