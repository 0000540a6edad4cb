// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "HotPool",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "HotPool", targets: ["HotPool"]),
        .library(name: "HotPoolConfigurationFile", targets: ["HotPoolConfigurationFile"]),
        .executable(name: "hotpool", targets: ["hotpool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // Thin C over epoll, eventfd, timerfd, io_uring, sockets, c-ares, nghttp2, OpenSSL 3.0 and BoringSSL
        // (swift-nio-ssl's CNIOBoringSSL, reached through its NIOSSL product; symbols prefixed): no policy.
        .target(
            name: "CShims",
            dependencies: [.product(name: "NIOSSL", package: "swift-nio-ssl")],
            path: "CShims",
            linkerSettings: [
                .linkedLibrary("ssl"),
                .linkedLibrary("crypto"),
                .linkedLibrary("uring"),
                .linkedLibrary("cares"),
                .linkedLibrary("nghttp2"),
                .linkedLibrary("brotlidec"),
                .linkedLibrary("z"),
                .linkedLibrary("zstd"),
            ]
        ),
        // The vocabulary every layer shares: handles and ids, close reasons, errors, durations
        // and deadlines, the configuration and its value types, statistics. No CShims.
        .target(
            name: "HotPoolCore",
            dependencies: [
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The pool's decisions: events in, actions out, injected clock; the struct-of-arrays
        // connection table, hosts and IPs, waiters. No C, no I/O: it cannot reach a socket.
        .target(
            name: "HotPoolStateMachine",
            dependencies: ["HotPoolCore", .product(name: "DequeModule", package: "swift-collections")]
        ),
        // The reactor thread, the epoll and io_uring backends, timers, the inbox and handoffs
        // where threads meet, TLS contexts, the c-ares resolver.
        .target(
            name: "HotPoolIO",
            dependencies: ["CShims", "HotPoolCore", .product(name: "DequeModule", package: "swift-collections")]
        ),
        // HTTP on the wire: the HTTP/1.1 serializer and response parser, the nghttp2 session,
        // the request framing rules.
        .target(
            name: "HotPoolHTTP",
            dependencies: ["CShims", "HotPoolCore", .product(name: "HTTPTypes", package: "swift-http-types")]
        ),
        // Executes the machine's actions with the I/O and HTTP layers: connections' I/O,
        // exchanges over HTTP/1.1 and HTTP/2, the callers waiting, metrics.
        .target(
            name: "HotPoolDriver",
            dependencies: [
                "CShims", "HotPoolCore", "HotPoolStateMachine", "HotPoolIO", "HotPoolHTTP",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The public API; re-exports HotPoolCore, so `import HotPool` is all a user writes.
        .target(
            name: "HotPool",
            dependencies: [
                "HotPoolCore", "HotPoolStateMachine", "HotPoolIO", "HotPoolHTTP", "HotPoolDriver",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // HotPoolConfiguration from a TOML file and HOTPOOL_ environment variables. Beside the
        // public API, not in it: a library user who sets the configuration in code builds no TOML parser.
        .target(
            name: "HotPoolConfigurationFile",
            dependencies: [
                "HotPoolCore",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        // Drives the test origin (Tests/Origin/server.py) for the tests and the demo.
        .target(
            name: "OriginControl",
            dependencies: ["HotPool"],
            path: "Sources/OriginControl"
        ),
        // The command line: fetch, fingerprint, config check, demo.
        .executableTarget(
            name: "hotpool",
            dependencies: [
                "HotPool", "HotPoolConfigurationFile", "OriginControl",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Sources/hotpool"
        ),
        .testTarget(
            name: "HotPoolTests",
            dependencies: [
                "HotPool", "HotPoolCore", "HotPoolStateMachine", "HotPoolIO", "HotPoolHTTP", "HotPoolDriver",
                "CShims", "OriginControl", "HotPoolConfigurationFile",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/HotPoolTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
