// swift-tools-version:6.0
// The libFuzzer targets (the HTTP/1.1 response parser, request framing): their own package, so the
// top-level `swift test` never builds them. Build and run them through `run.sh`, which passes the
// sanitizer flags.
import PackageDescription

/// SwiftPM names a path dependency after its folder (`main` here, whatever a clone is called).
let hotPoolPackage = Context.packageDirectory.split(separator: "/").dropLast(2).last.map { $0.lowercased() } ?? "hotpool"

let package = Package(
    name: "HotPoolFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
    ],
    targets: [
        // The declaration of libFuzzer's driver (the library itself comes with -sanitize=fuzzer).
        .systemLibrary(name: "CLibFuzzer", path: "Sources/CLibFuzzer"),
        // LLVMFuzzerTestOneInput, and a main that starts libFuzzer's driver.
        .executableTarget(
            name: "ResponseParserFuzz",
            dependencies: ["CLibFuzzer", .product(name: "HotPool", package: hotPoolPackage)],
            path: "Sources/ResponseParserFuzz"
        ),
        .executableTarget(
            name: "RequestFramingFuzz",
            dependencies: ["CLibFuzzer", .product(name: "HotPool", package: hotPoolPackage)],
            path: "Sources/RequestFramingFuzz"
        ),
    ],
    swiftLanguageModes: [.v6]
)
