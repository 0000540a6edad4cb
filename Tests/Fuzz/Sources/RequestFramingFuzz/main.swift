// libFuzzer brings its own `main` (-sanitize=fuzzer links it whole), but on Linux SwiftPM links an
// executable with `main` pointing at the executable module's entry point (this file), which wins;
// so this file starts libFuzzer's driver itself, as libFuzzer's `main` would.
import CLibFuzzer

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
// A closure, not `fuzz` itself: a debug build turning the @_cdecl function into a C pointer in
// this file defines its symbol here a second time.
let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data, size) }
if status != 0 { fatalError("libFuzzer's driver returned \(status)") }
