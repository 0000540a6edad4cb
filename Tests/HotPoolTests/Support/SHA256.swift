import CShims

/// The SHA-256 of `bytes` in lower-case hex, as the test origin names bodies (X-Plain-SHA256).
func sha256Hex(_ bytes: [UInt8]) -> String {
    let digest = hp_sha256_new()!
    bytes.withUnsafeBytes { hp_sha256_update(digest, $0.baseAddress, $0.count) }
    var out = [UInt8](repeating: 0, count: Int(HP_SHA256_BYTES))
    hp_sha256_final(digest, &out)
    return out.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}
