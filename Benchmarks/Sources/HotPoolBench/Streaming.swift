import Foundation
@_spi(Benchmarks) import HotPool

/// One download of the 1 GiB file nginx serves (`/1g`), read as it arrives: HotPool's
/// `streamingRoundTrip` (a task on the pool's executor, each backend) beside curl writing it to
/// /dev/null, one after the other in each run. The figures are the client CPU per GiB (HotPool's
/// from this process's rusage, curl's from wait4) and the rate; the ratio is HotPool's CPU per
/// GiB over curl's.
func streamingDownload(_ options: Options) async throws -> [Metric] {
    let scenario = "streaming download /1g", path = "/1g", size = 1 << 30
    let gib = Double(size) / Double(1 << 30)
    var rows: [Metric] = []
    func add(_ name: String, _ unit: String, _ value: Double) { rows.add(scenario, name, unit, value) }
    for _ in 0..<options.runs {
        let curl = try curlRun(["-o", "/dev/null", "-w", "%{size_download}", options.url(path)], options, gib: gib, add) {
            $0 == String(size)
        }
        for backend in backends {
            let name = HotPoolCaller.executor.label(backend)
            let pool = try options.makePool(connections: 1, backend: backend)
            let authority = options.port == 443 ? options.host : "\(options.host):\(options.port)"
            let request = HTTPRequest(method: .get, scheme: "https", authority: authority, path: path)
            let (received, span) = try await Span.measure {
                try await Task(executorPreference: pool.executor) {
                    try await pool.withConnection(host: options.host, port: options.port) { connection in
                        let response = try await connection.streamingRoundTrip(request)
                        var received = 0
                        for try await chunk in response.body { received += chunk.count }
                        return received
                    }
                }.value
            }
            try await pool.close()
            try check(status: 200, bodyBytes: received, expected: size)
            add("\(name) CPU", "s/GiB", span.cpuSeconds / gib)
            add(name, "GiB/s", gib / span.wallSeconds)
            add("\(name)/curl CPU per GiB", "×", (span.cpuSeconds / gib) / (curl.cpuSeconds / gib))
        }
    }
    return rows
}

/// Runs curl with `arguments` (trusting nginx's CA), checks what its `-w` wrote with `accepts`,
/// and adds its CPU per GiB and rate for a body of `gib` GiB.
private func curlRun(_ arguments: [String], _ options: Options, gib: Double, _ add: (String, String, Double) -> Void,
                     accepts: (String) -> Bool) throws -> ChildRun {
    let command = ["curl", "-s", "--cacert", options.caFile] + arguments
    let curl = try runChild(command)
    guard curl.exitCode == 0, accepts(curl.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw BenchError.childFailed(command.joined(separator: " "), curl.exitCode, curl.output)
    }
    add("curl CPU", "s/GiB", curl.cpuSeconds / gib)
    add("curl", "GiB/s", gib / curl.wallSeconds)
    return curl
}

/// One upload of 1 GiB to nginx (`PUT /upload/…`, which WebDAV writes to a file before it
/// answers 201): HotPool's `roundTrip(_:body:)` from a sequence of 64 KiB pieces (a task on the
/// pool's executor, each backend) beside `curl -T` of a 1 GiB file in the page cache, one after the other in
/// each run. Both send it with its Content-Length. The figures are the client CPU per GiB and the
/// rate; the ratio is HotPool's CPU per GiB over curl's.
func streamingUpload(_ options: Options) async throws -> [Metric] {
    let scenario = "streaming upload 1 GiB", size = 1 << 30, pieceSize = 64 << 10
    let gib = Double(size) / Double(1 << 30)
    var rows: [Metric] = []
    func add(_ name: String, _ unit: String, _ value: Double) { rows.add(scenario, name, unit, value) }
    let source = FileManager.default.temporaryDirectory.appendingPathComponent("hotpool-bench-upload-\(getpid())").path
    guard FileManager.default.createFile(atPath: source, contents: nil), truncate(source, off_t(size)) == 0 else {
        throw BenchError.unexpected("cannot make the sparse file \(source)")
    }
    defer { try? FileManager.default.removeItem(atPath: source) }
    // Read once, so curl's reads copy from the page cache: a sparse file's first read has the
    // kernel zero each page (three times curl's CPU for the body in a `perf record` of the group).
    guard let warm = FileHandle(forReadingAtPath: source) else { throw BenchError.unexpected("cannot read \(source)") }
    while let piece = try warm.read(upToCount: 1 << 20), !piece.isEmpty {}
    try warm.close()
    for _ in 0..<options.runs {
        let arguments = ["-o", "/dev/null", "-H", "Expect:", "-T", source, "-w", "%{http_code} %{size_upload}", options.url("/upload/curl")]
        let curl = try curlRun(arguments, options, gib: gib, add) { $0.hasSuffix(" \(size)") }
        for backend in backends {
            let name = HotPoolCaller.executor.label(backend)
            let pool = try options.makePool(connections: 1, backend: backend)
            let request = HTTPRequest(method: .put, scheme: "https", authority: options.authority, path: "/upload/hotpool",
                                      headerFields: [.contentLength: String(size)])
            let (status, span) = try await Span.measure {
                try await Task(executorPreference: pool.executor) {
                    try await pool.withConnection(host: options.host, port: options.port) { connection in
                        try await connection.roundTrip(request, body: Pieces(size: size, pieceSize: pieceSize)).head.status.code
                    }
                }.value
            }
            try await pool.close()
            guard status == 201 || status == 204 else { throw BenchError.badResponse("upload answered \(status)") }
            add("\(name) CPU", "s/GiB", span.cpuSeconds / gib)
            add(name, "GiB/s", gib / span.wallSeconds)
            add("\(name)/curl CPU per GiB", "×", (span.cpuSeconds / gib) / (curl.cpuSeconds / gib))
        }
    }
    return rows
}

/// `size` zero bytes as pieces of `pieceSize` (one buffer, handed over again and again).
struct Pieces: AsyncSequence, Sendable {
    let size: Int
    let pieceSize: Int

    func makeAsyncIterator() -> Iterator { Iterator(left: size, piece: [UInt8](repeating: 0, count: pieceSize)) }

    struct Iterator: AsyncIteratorProtocol {
        var left: Int
        let piece: [UInt8]

        mutating func next() async -> [UInt8]? {
            guard left > 0 else { return nil }
            defer { left -= piece.count }
            return left >= piece.count ? piece : Array(piece[..<left])
        }
    }
}
