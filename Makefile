# The two set-up commands of README.md, and the system packages they need.
.PHONY: deps demo test sanitize

# liburing-dev and libssl-dev for CShims, zlib1g-dev, libbrotli-dev and libzstd-dev for its certificate
# decompressors, libc-ares-dev for the pool's resolver; python3-cryptography for the test origin,
# python3-dnslib for the tests' DNS server (Tests/Origin/dns.py), curl-cffi for the fingerprint tests;
# tinyproxy-bin, dante-server and squid-openssl (with curl) for the proxy tests and the demo.
deps:
	@./.ci/install-deps

# The demo: the pool against an embedded local TLS origin on 127.0.0.2-4.
demo: deps
	swift run -c release hotpool demo

# The test suite (serial: tests count this process's open fds), once on each I/O backend, and once
# more with two reactors per pool.
test: deps
	HOTPOOL_TEST_IO_BACKEND=epoll swift test --no-parallel --explicit-target-dependency-import-check=error
	HOTPOOL_TEST_IO_BACKEND=io_uring swift test --no-parallel --skip-build
	HOTPOOL_TEST_REACTORS=2 swift test --no-parallel --skip-build

# The suite under ThreadSanitizer and AddressSanitizer, each in its own build folder. LeakSanitizer
# runs with the address sanitizer; Tests/lsan-suppressions.txt lists leaks of the toolchain's own
# libraries (XCTest, Foundation's Process and per-thread data, BoringSSL's per-thread error queue),
# none of HotPool's. AddressSanitizer's quarantine is 8 MB instead of 256: freed memory it holds
# counts in the process's RSS, and the tests that bound peak RSS under an endless response or a
# PING flood would otherwise measure the quarantine
# (the TLS libraries free and re-allocate their buffers per record, by SSL_MODE_RELEASE_BUFFERS;
# at 16 MB the PING flood on io_uring peaked 35 MB over its baseline under ASan, 2.5 MB without).
sanitize: deps
	for backend in epoll io_uring; do \
		HOTPOOL_TEST_IO_BACKEND=$$backend swift test --no-parallel --sanitize=thread --scratch-path .build-tsan || exit 1; \
		HOTPOOL_TEST_IO_BACKEND=$$backend ASAN_OPTIONS=quarantine_size_mb=8 \
			LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt \
			swift test --no-parallel --sanitize=address --scratch-path .build-asan || exit 1; \
	done
