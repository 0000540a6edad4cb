// swift-tools-version:6.0
// The benchmark harness: its own package, so the top-level `swift test` never builds the peers.
// Build and run it through `run.sh`, which starts the nginx it measures against.
import PackageDescription

/// SwiftPM names a path dependency after its folder (`main` here, whatever a clone is called).
let hotPoolPackage = Context.packageDirectory.split(separator: "/").dropLast().last.map { $0.lowercased() } ?? "hotpool"

let package = Package(
    name: "HotPoolBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Counts heap allocations by defining malloc & co. in the executable (forwarding to glibc).
        .target(name: "MallocCounter", path: "Sources/MallocCounter"),
        .executableTarget(
            name: "HotPoolBench",
            dependencies: [
                "MallocCounter",
                .product(name: "HotPool", package: hotPoolPackage),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Sources/HotPoolBench",
            // Exports malloc & co. from the executable so every shared library binds to them.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--export-dynamic"])]
        ),
    ],
    swiftLanguageModes: [.v6]
)
