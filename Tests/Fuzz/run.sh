#!/usr/bin/env bash
# Fuzzes with libFuzzer and AddressSanitizer, each target in turn for SECONDS:
#   ResponseParserFuzz   the HTTP/1.1 response parser: every input is parsed whole and split into
#                        reads, and the outcomes must agree (corpus/)
#   RequestFramingFuzz   request framing: a request the pool accepts must go out with one Host, a
#                        Content-Length that is the body's and exactly the body (corpus-request-framing/)
#
#   Tests/Fuzz/run.sh [SECONDS] [TARGET]    # default 60 each, both targets
#
# Starts from a copy of the corpus (new inputs go to a temporary folder, never into the
# committed one); a finding is written to $FUZZ_ARTIFACTS (default /tmp/hotpool-fuzz-artifacts/)
# and the script exits non-zero. Other libFuzzer options can be given in FUZZ_OPTIONS (e.g. "-jobs=2").
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
seconds="${1:-60}"
targets=("${2:-ResponseParserFuzz}")
[ $# -lt 2 ] && targets=(ResponseParserFuzz RequestFramingFuzz)
artifacts="${FUZZ_ARTIFACTS:-/tmp/hotpool-fuzz-artifacts}"
# Swift's own backtracer, on a crash, reads the stack in a way AddressSanitizer reports as a
# stack-buffer-underflow of its own, hiding the finding: leave the crash to libFuzzer.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"

declare -A corpus=([ResponseParserFuzz]=corpus [RequestFramingFuzz]=corpus-request-framing)
work=""
trap '[ -n "$work" ] && rm -rf "$work"' EXIT  # the temporary corpus goes on every exit, a finding's too
for target in "${targets[@]}"; do
    # Only the fuzz products: the root package's executable and tests are not built.
    build=(swift build -c release --product "$target" -Xswiftc -sanitize=fuzzer,address)
    "${build[@]}"
    bin="$("${build[@]}" --show-bin-path)/$target"

    work="$(mktemp -d /tmp/hotpool-fuzz.XXXXXX)"
    mkdir -p "$work/corpus" "$artifacts"
    cp "${corpus[$target]}"/* "$work/corpus/"

    # Run from the temporary folder, where libFuzzer's own files (fuzz-N.log with -jobs) land too.
    # shellcheck disable=SC2086
    (cd "$work" && "$bin" corpus -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" ${FUZZ_OPTIONS:-})
    rm -rf "$work"
    work=""
done
