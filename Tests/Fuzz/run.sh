#!/usr/bin/env bash
# Fuzzes the HTTP/1.1 response parser with libFuzzer and AddressSanitizer: every input is parsed
# whole and split into reads, and the outcomes must agree (see Sources/ResponseParserFuzz).
#
#   Tests/Fuzz/run.sh [SECONDS]    # default 60
#
# Starts from a copy of corpus/ (new inputs go to a temporary folder, never into corpus/); a
# finding is written to $FUZZ_ARTIFACTS (default /tmp/hotpool-fuzz-artifacts/) and the script
# exits non-zero. Other libFuzzer options can be given in FUZZ_OPTIONS (e.g. "-jobs=2").
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
seconds="${1:-60}"
artifacts="${FUZZ_ARTIFACTS:-/tmp/hotpool-fuzz-artifacts}"
# Swift's own backtracer, on a crash, reads the stack in a way AddressSanitizer reports as a
# stack-buffer-underflow of its own, hiding the finding: leave the crash to libFuzzer.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"

# Only the fuzz product: the root package's executable and tests are not built.
build=(swift build -c release --product ResponseParserFuzz -Xswiftc -sanitize=fuzzer,address)
"${build[@]}"
bin="$("${build[@]}" --show-bin-path)/ResponseParserFuzz"

work="$(mktemp -d /tmp/hotpool-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
cp corpus/* "$work/corpus/"

# Run from the temporary folder, where libFuzzer's own files (fuzz-N.log with -jobs) land too.
# shellcheck disable=SC2086
(cd "$work" && "$bin" corpus -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" ${FUZZ_OPTIONS:-})
