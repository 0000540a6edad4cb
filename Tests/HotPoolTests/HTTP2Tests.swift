import Foundation
import OriginControl
import Testing
@testable import HotPool

/// HTTP/2 connections, checked from the server side.
@Suite struct HTTP2Tests {
    @Test func smoke() async throws {
        let origin = try Origin()
        try await origin.setTLSMode("h2")
        let pool = try origin.pool()
        let connection = try await pool.getConnection(host: Origin.hostName, port: origin.port)
        #expect(connection.httpVersion == .http2)
        let response = try await connection.roundTrip(get("/a"))
        #expect(response.head.status == .ok)
        #expect(response.body == Array("ok".utf8))
        let second = try await connection.roundTrip(get("/b"))
        #expect(second.head.status == .ok)
        pool.putConnection(connection)
        let frames = try await origin.recentFrames(last: 20)
        for frame in frames { print(frame.type, frame.stream, frame.flags, frame.settings, frame.increment as Any, frame.priority as Any) }
        let requests = try await origin.send(["cmd": "requests", "ip": "*", "last": 2])
        print(requests.object)
        try await pool.close()
    }
}
