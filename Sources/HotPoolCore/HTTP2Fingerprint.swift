import HTTPTypes

/// An HTTP version a connection can speak, as ALPN names it.
public enum HTTPProtocolVersion: String, Sendable, Hashable, CaseIterable {
    /// HTTP/1.1 (ALPN `http/1.1`; also what a server that picks no ALPN protocol speaks).
    case http1_1 = "http/1.1"
    /// HTTP/2 (ALPN `h2`), through nghttp2.
    case http2 = "h2"
}

/// An HTTP/2 pseudo-header field of a request.
public enum HTTP2PseudoHeader: String, Sendable, Hashable, CaseIterable {
    /// `:method` (`m` in an Akamai fingerprint).
    case method = ":method"
    /// `:authority` (`a`).
    case authority = ":authority"
    /// `:scheme` (`s`).
    case scheme = ":scheme"
    /// `:path` (`p`).
    case path = ":path"

    /// Its letter in an Akamai fingerprint.
    var akamaiLetter: Character { rawValue.dropFirst().first! }
}

/// A SETTINGS parameter a connection's preface sends.
public struct HTTP2Setting: Sendable, Hashable {
    /// The parameter's identifier (1 = HEADER_TABLE_SIZE, 2 = ENABLE_PUSH, 3 = MAX_CONCURRENT_STREAMS,
    /// 4 = INITIAL_WINDOW_SIZE, 5 = MAX_FRAME_SIZE, 6 = MAX_HEADER_LIST_SIZE, 9 = NO_RFC7540_PRIORITIES).
    public var id: UInt16
    /// Its value.
    public var value: UInt32

    /// A setting.
    public init(_ id: UInt16, _ value: UInt32) {
        self.id = id
        self.value = value
    }
}

extension HTTP2Setting {
    /// The names of the parameters RFC 9113 section 6.5.2 defines (with RFC 8441's 8 and RFC 9218's 9).
    static let names: [UInt16: String] = [
        1: "SETTINGS_HEADER_TABLE_SIZE", 2: "SETTINGS_ENABLE_PUSH", 3: "SETTINGS_MAX_CONCURRENT_STREAMS",
        4: "SETTINGS_INITIAL_WINDOW_SIZE", 5: "SETTINGS_MAX_FRAME_SIZE", 6: "SETTINGS_MAX_HEADER_LIST_SIZE",
        8: "SETTINGS_ENABLE_CONNECT_PROTOCOL", 9: "SETTINGS_NO_RFC7540_PRIORITIES",
    ]

    /// The values those RFCs allow, for the parameters that restrict them; any other parameter
    /// (an unknown one is ignored by its receiver) takes any 32-bit value.
    static let allowedValues: [UInt16: ClosedRange<UInt32>] = [
        2: 0...1, 4: 0...HTTP2Fingerprint.maxWindowSize, 5: 16_384...16_777_215, 8: 0...1, 9: 0...1,
    ]
}

/// The RFC 7540 priority a request's HEADERS frame carries.
public struct HTTP2Priority: Sendable, Hashable {
    /// The stream it depends on (0 = the root).
    public var dependency: Int32
    /// 1...256.
    public var weight: Int
    /// Whether the dependency is exclusive.
    public var exclusive: Bool

    /// A priority.
    public init(dependency: Int32 = 0, weight: Int, exclusive: Bool) {
        self.dependency = dependency
        self.weight = weight
        self.exclusive = exclusive
    }
}

/// How a connection looks at the HTTP/2 layer: its preface (SETTINGS in order, the connection
/// window's increment), the priority of its requests, the order of their pseudo-header fields,
/// and the request headers in HTTP/2 form. Servers fingerprint these (the Akamai format:
/// `SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order`).
public struct HTTP2Fingerprint: Sendable, Hashable {
    /// SETTINGS sent in the preface, in this order.
    public var settings: [HTTP2Setting]
    /// The increment of the connection WINDOW_UPDATE sent after SETTINGS; 0 = none.
    public var connectionWindowIncrement: UInt32
    /// The priority in each request's HEADERS frame; nil = none.
    public var headersPriority: HTTP2Priority?
    /// The pseudo-header fields, in the order sent.
    public var pseudoHeaderOrder: [HTTP2PseudoHeader]
    /// Request headers added to every request that does not set them, in this order after the
    /// pseudo-header fields (lower-case names; a profile's Accept-Language choice replaces the
    /// `accept-language` value).
    public var headers: [ProfileHeader]

    /// A fingerprint from its parts.
    public init(settings: [HTTP2Setting], connectionWindowIncrement: UInt32, headersPriority: HTTP2Priority?,
                pseudoHeaderOrder: [HTTP2PseudoHeader] = [.method, .authority, .scheme, .path], headers: [ProfileHeader] = []) {
        self.settings = settings
        self.connectionWindowIncrement = connectionWindowIncrement
        self.headersPriority = headersPriority
        self.pseudoHeaderOrder = pseudoHeaderOrder
        self.headers = headers
    }

    /// The most SETTINGS a preface carries (the shim's `HP_H2_MAX_SETTINGS`; a test checks they agree).
    package static let maxSettings = 16
    /// The largest flow-control window HTTP/2 allows, 2^31-1 (RFC 9113 section 6.9.1).
    static let maxWindowSize: UInt32 = 0x7FFF_FFFF
    /// Every connection's receive window before the preface's WINDOW_UPDATE (RFC 9113 section 6.9.2).
    static let initialConnectionWindow: UInt32 = 65_535
    /// The largest `connectionWindowIncrement`: the window it opens may not pass `maxWindowSize`.
    public static let maxConnectionWindowIncrement = maxWindowSize - initialConnectionWindow

    /// The Akamai fingerprint this shape produces: `id:value;…|increment|0|m,a,s,p` (no PRIORITY
    /// frames are sent, so the third part is `0`; no WINDOW_UPDATE gives `00`).
    /// `init(akamai:base:)` reads it back.
    public var akamai: String {
        let settings = settings.map { "\($0.id)\(Akamai.idValueSeparator)\($0.value)" }.joined(separator: Akamai.settingSeparator)
        let window = connectionWindowIncrement == 0 ? Akamai.noWindowUpdate : String(connectionWindowIncrement)
        let order = pseudoHeaderOrder.map { String($0.akamaiLetter) }.joined(separator: Akamai.letterSeparator)
        return [settings, window, Akamai.noPriorityFrames, order].joined(separator: Akamai.partSeparator)
    }

    /// The Akamai format's separators and fixed tokens: `SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order`.
    enum Akamai {
        /// The parts, in order.
        static let parts = ["SETTINGS", "WINDOW_UPDATE", "PRIORITY", "pseudo-header order"]
        static let partSeparator = "|"
        static let settingSeparator = ";"
        static let idValueSeparator = ":"
        static let letterSeparator = ","
        /// The WINDOW_UPDATE part when there is none.
        static let noWindowUpdate = "00"
        /// The PRIORITY part when no PRIORITY frames are sent (HotPool sends none).
        static let noPriorityFrames = "0"
    }

    /// Throws `invalidConfiguration`, its reason starting with `context`, for a shape nghttp2
    /// would refuse or RFC 9113 forbids: too many settings, one twice or out of its range, a
    /// window past 2^31-1, a bad priority, a pseudo-header order that does not name each field
    /// once, or an invalid header.
    func validate(in context: String) throws(HotPoolError) {
        if settings.count > Self.maxSettings {
            throw .invalidConfiguration("\(context): at most \(Self.maxSettings) HTTP/2 settings")
        }
        var seen = Set<UInt16>()
        for setting in settings {
            let label = "HTTP/2 setting \(HTTP2Setting.names[setting.id].map { "\($0) (\(setting.id))" } ?? String(setting.id))"
            guard seen.insert(setting.id).inserted else { throw .invalidConfiguration("\(context): \(label) is sent twice") }
            if let allowed = HTTP2Setting.allowedValues[setting.id], !allowed.contains(setting.value) {
                throw .invalidConfiguration("\(context): \(label) must be within \(allowed), got \(setting.value)")
            }
        }
        if connectionWindowIncrement > Self.maxConnectionWindowIncrement {
            throw .invalidConfiguration("""
                \(context): the HTTP/2 connection window increment must be within \
                0...\(Self.maxConnectionWindowIncrement) (the window, \(Self.initialConnectionWindow) at first, may not pass \(Self.maxWindowSize)), \
                got \(connectionWindowIncrement)
                """)
        }
        if let priority = headersPriority, !(1...256).contains(priority.weight) || priority.dependency < 0 {
            throw .invalidConfiguration("\(context): HTTP/2 priority weight must be 1...256 and its dependency >= 0")
        }
        if Set(pseudoHeaderOrder) != Set(HTTP2PseudoHeader.allCases) || pseudoHeaderOrder.count != HTTP2PseudoHeader.allCases.count {
            throw .invalidConfiguration("\(context): the HTTP/2 pseudo-header order must name each of the four once")
        }
        for header in headers
        where HTTPField.Name(header.name) == nil || header.name.lowercased() != header.name || !HTTPField.isValidValue(header.value) {
            throw .invalidConfiguration("\(context): invalid HTTP/2 header \(header.name) (names are lower-case)")
        }
    }
}

extension HTTP2Fingerprint {
    /// nghttp2's own preface (no settings beyond push off, no window increment, no priority) and
    /// no extra headers: the shape of a custom spec that sets none.
    public static let plain = HTTP2Fingerprint(settings: [HTTP2Setting(2, 0)], connectionWindowIncrement: 0, headersPriority: nil)
}
