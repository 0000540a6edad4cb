import Foundation
import HotPool
import OriginControl

/// Open file descriptors of this process.
func openFDCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// A GET request for `path`.
func get(_ path: String = "/") -> HTTPRequest {
    HTTPRequest(method: .get, scheme: "https", authority: Origin.hostName, path: path)
}
