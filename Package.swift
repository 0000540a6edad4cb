// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "HotPool",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "HotPool", targets: ["HotPool"]),
        .executable(name: "hotpool", targets: ["hotpool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Thin C over epoll, eventfd, timerfd, io_uring, sockets, c-ares, nghttp2 and OpenSSL 3.0: no policy.
        .target(
            name: "CShims",
            path: "CShims",
            linkerSettings: [
                .linkedLibrary("ssl"),
                .linkedLibrary("crypto"),
                .linkedLibrary("uring"),
                .linkedLibrary("cares"),
                .linkedLibrary("nghttp2"),
            ]
        ),
        .target(
            name: "HotPool",
            dependencies: [
                "CShims",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/HotPool"
        ),
        // Drives the test origin (Tests/Origin/server.py) for the tests and the demo.
        .target(
            name: "OriginControl",
            dependencies: ["HotPool"],
            path: "Sources/OriginControl"
        ),
        .executableTarget(
            name: "hotpool",
            dependencies: ["HotPool", "OriginControl"],
            path: "Sources/hotpool"
        ),
        .testTarget(
            name: "HotPoolTests",
            dependencies: [
                "HotPool", "CShims", "OriginControl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/HotPoolTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
