// CShims: thin, policy-free C over the Linux, OpenSSL and BoringSSL calls HotPool needs.
// Every function returns >= 0 on success or a negative errno / HP_TLS_* code;
// nothing here decides what a failure means.
#ifndef HOTPOOL_CSHIMS_H
#define HOTPOOL_CSHIMS_H

#include <stddef.h>
#include <stdint.h>


// ---------------------------------------------------------------- epoll
/// Readiness bits, the same values as EPOLLIN / EPOLLOUT / ... so no translation is needed.
#define HP_EV_IN 0x001u
#define HP_EV_OUT 0x004u
#define HP_EV_ERR 0x008u
#define HP_EV_HUP 0x010u
#define HP_EV_RDHUP 0x2000u
#define HP_EV_ET 0x80000000u

/// One readiness event: the caller's token and the ready bits.
typedef struct {
    uint64_t token;
    uint32_t events;
} hp_event;

int hp_epoll_create(void);
int hp_epoll_add(int epfd, int fd, uint32_t events, uint64_t token);
int hp_epoll_del(int epfd, int fd);
/// Waits up to timeout_ms (-1 = forever). Returns the number of events, 0 on EINTR.
int hp_epoll_wait(int epfd, hp_event *out, int max, int timeout_ms);

// ---------------------------------------------------------------- eventfd, timerfd, fds, time
int hp_eventfd_create(void);
int hp_eventfd_signal(int fd);
int hp_eventfd_drain(int fd);
int hp_timerfd_create(void);
/// Arms a one-shot relative timer; ns <= 0 disarms.
int hp_timerfd_arm(int fd, int64_t ns);
int hp_timerfd_drain(int fd);
int hp_close(int fd);
int64_t hp_monotonic_ns(void);
/// Blocks SIGPIPE on the calling thread, so a write to a closed socket returns EPIPE instead.
void hp_block_sigpipe(void);
/// The event loop this thread is running now (NULL if none): a thread-local marker, since a
/// thread id compared with a stored one can name a later thread once the first has ended.
void hp_set_current_loop(const void *loop);
const void *hp_current_loop(void);
/// Names the calling thread (at most 15 bytes show: the kernel's limit), as `top -H` shows it.
void hp_name_thread(const char *name);

// ---------------------------------------------------------------- DNS (c-ares)
typedef struct hp_dns hp_dns;
/// c-ares wants `fd` watched for reading and/or writing (both 0: stop watching, it is closing).
typedef void (*hp_dns_socket_cb)(void *context, int fd, int readable, int writable);
/// A lookup ended: `status` 0 with `count` NUL-separated IP literals in `addresses`, or a
/// c-ares status (hp_dns_error_string). Called from hp_dns_process, hp_dns_lookup or hp_dns_destroy.
typedef void (*hp_dns_answer_cb)(void *context, uint64_t id, int status, const char *addresses, int count);
#define HP_DNS_ENOMEM (-12)

/// A resolver: `servers` as "ip", "ip:port" or "[ipv6]:port", comma-separated (NULL = the
/// system's configuration); each query waits `timeout_ms` and is sent `tries` times.
hp_dns *hp_dns_create(const char *servers, int timeout_ms, int tries, hp_dns_socket_cb on_socket,
                      hp_dns_answer_cb on_answer, void *context, char *err, size_t errlen);
/// Ends every lookup in flight (answered with a status) and frees the resolver.
void hp_dns_destroy(hp_dns *dns);
/// Starts an A + AAAA lookup of `name`; its answer carries `id`.
int hp_dns_lookup(hp_dns *dns, const char *name, uint64_t id);
/// Lets c-ares read `read_fd` / write `write_fd` (-1 = none; both -1: only its timeouts).
void hp_dns_process(hp_dns *dns, int read_fd, int write_fd);
/// Nanoseconds until c-ares needs hp_dns_process for its timeouts; -1 if nothing is in flight.
int64_t hp_dns_timeout_ns(hp_dns *dns);
const char *hp_dns_error_string(int status);
/// True for "the name does not exist" or "it has no address": an answer, not a failure to get one.
int hp_dns_status_not_found(int status);

// ---------------------------------------------------------------- io_uring (liburing's inline API made callable)
typedef struct hp_uring hp_uring;
/// One completion: the submission's user data, its result (bytes, poll mask or -errno) and flags.
typedef struct {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
} hp_completion;
/// Completion flags: a provided buffer holds the data (its id is flags >> HP_CQE_BUFFER_SHIFT);
/// a multishot operation goes on (more completions will come).
#define HP_CQE_F_BUFFER 1u
#define HP_CQE_F_MORE 2u
#define HP_CQE_BUFFER_SHIFT 16

/// A ring of `entries` submissions (completions: 4x), single-issuer with deferred task work where
/// the kernel has them (then disabled until hp_uring_enable). NULL with -errno in *err.
hp_uring *hp_uring_create(unsigned entries, int *err);
/// Makes hp_uring_create fail with `err` (0: no longer), as a kernel or sandbox without io_uring does.
void hp_uring_simulate_init_error(int err);
/// Makes the next `count` attempts to queue a submission on any ring (any operation; a close's
/// whole chain is one attempt) find the submission queue full, as when the kernel cannot take
/// what is queued: they return -EBUSY (0: none any more).
void hp_uring_simulate_full_queue(int count);
/// Enables the ring for the calling thread, the only one that may submit from now on.
int hp_uring_enable(hp_uring *ring);
/// Closes the ring and frees its buffers (operations in flight are cancelled); only
/// hp_uring_enters and hp_uring_destroy may follow.
void hp_uring_exit(hp_uring *ring);
void hp_uring_destroy(hp_uring *ring);
/// Registers `count` (a power of two) receive buffers of `size` bytes as buffer group 0.
int hp_uring_setup_buffers(hp_uring *ring, unsigned count, unsigned size);
/// The address of provided buffer `id`; hp_uring_recycle_buffer gives it back to the kernel.
void *hp_uring_buffer(hp_uring *ring, unsigned id);
void hp_uring_recycle_buffer(hp_uring *ring, unsigned id);
/// Queues a one-shot poll for `mask` on fd.
int hp_uring_poll_add(hp_uring *ring, int fd, uint32_t mask, uint64_t user_data);
/// Queues removal of the poll queued with `target`; the removal completes with `user_data`.
int hp_uring_poll_remove(hp_uring *ring, uint64_t target, uint64_t user_data);
/// Queues a cancel of the operation queued with `target` (a multishot receive ends with
/// -ECANCELED); the cancel completes with `user_data`.
int hp_uring_cancel(hp_uring *ring, uint64_t target, uint64_t user_data);
/// Queues a multishot receive into provided buffers: one completion per arrival until one without
/// HP_CQE_F_MORE (0 = the peer's end of stream, -ENOBUFS = buffers ran out, or an error).
int hp_uring_recv_multishot(hp_uring *ring, int fd, uint64_t user_data);
/// Queues a send of `len` bytes (valid until its completion).
int hp_uring_send(hp_uring *ring, int fd, const void *bytes, size_t len, uint64_t user_data);
/// Queues a read into buf (valid until its completion).
int hp_uring_read(hp_uring *ring, int fd, void *buf, unsigned len, uint64_t user_data);
/// Queues the end of a socket as one linked chain: cancel the `cancel_count` operations whose user
/// data `cancel` lists (what is in flight on fd), send `last_bytes` if any (a close_notify), close
/// fd. The cancels and the send complete with `side_data`, the close with `user_data`.
int hp_uring_close(hp_uring *ring, int fd, const uint64_t *cancel, int cancel_count, const void *last_bytes,
                   size_t last_len, uint64_t side_data, uint64_t user_data);
/// Submits what is queued and waits up to timeout_ns (< 0 = forever) for at least one completion;
/// copies up to max completions out. Returns how many, 0 on timeout or EINTR.
int hp_uring_submit_wait(hp_uring *ring, hp_completion *out, int max, int64_t timeout_ns);
/// io_uring_enter calls made (each submit_wait and each flush of a full queue).
long hp_uring_enters(const hp_uring *ring);

// ---------------------------------------------------------------- sockets
/// Non-blocking TCP connect (TCP_NODELAY on) to ip:port (IPv4 or IPv6 literal), optionally bound to local_ip first.
/// Returns the fd (with *in_progress = 1 while the connect is pending) or -errno (with
/// *bind_failed = 1 when binding local_ip failed).
int hp_tcp_connect(const char *ip, int port, const char *local_ip, int *in_progress, int *bind_failed);
/// The pending socket error (SO_ERROR) as a positive errno, 0 if none.
int hp_socket_error(int fd);
/// recv(2): bytes read, 0 at the peer's end of stream, or -errno (-EAGAIN: nothing there now).
long hp_recv(int fd, void *buf, size_t len);
/// send(2) without SIGPIPE: bytes sent or -errno.
long hp_send(int fd, const void *buf, size_t len);
/// Sends the ACK of what was received now, not after the delayed-ACK timer (TCP_QUICKACK): a
/// relay that holds a small segment until the last one is acknowledged (Nagle, as tinyproxy
/// does) would otherwise wait for that timer, about 40 ms.
void hp_tcp_ack_now(int fd);
/// 4 or 6 for a valid IP literal, 0 otherwise.
int hp_ip_family(const char *ip);

// ---------------------------------------------------------------- TLS: OpenSSL 3.0 and BoringSSL
#define HP_TLS_WANT_READ (-2)
#define HP_TLS_WANT_WRITE (-3)
#define HP_TLS_CLOSED (-4)   /* close_notify or end of stream from the peer */
#define HP_TLS_ERROR (-6)    /* protocol or verification error */

/// A connection's TLS engine over memory, with no socket: ciphertext is fed in and taken out by
/// the caller, who does the I/O (sans-I/O, so any I/O backend can carry it). The calls below are
/// the same whichever library (OpenSSL or BoringSSL) the engine's context was made with.
typedef struct hp_tls hp_tls;
/// A client context of one library, shaped by a profile; engines are made from it.
typedef struct hp_tls_ctx hp_tls_ctx;
/// A session a server issued (a TLS 1.3 ticket, a TLS 1.2 session), to resume with later.
typedef struct hp_tls_session hp_tls_session;

void hp_tls_ctx_free(hp_tls_ctx *ctx);
/// A client engine, SNI = host (unless an IP literal), host name verified when the context verifies.
hp_tls *hp_tls_new(hp_tls_ctx *ctx, const char *host);
/// 0 once the handshake is done, or an HP_TLS_* code (WANT_READ: feed it more).
int hp_tls_handshake(hp_tls *tls);
/// > 0 plaintext bytes read, or an HP_TLS_* code.
int hp_tls_read(hp_tls *tls, void *buf, int len);
/// > 0 plaintext bytes taken (their ciphertext joins the output), or an HP_TLS_* code.
int hp_tls_write(hp_tls *tls, const void *buf, int len);
/// Lends `len` received ciphertext bytes: the next calls read from them (a read goes on until
/// they are all taken or it returns). The span must stay valid until the next hp_tls_feed;
/// hp_tls_feed(tls, NULL, 0) takes it back.
void hp_tls_feed(hp_tls *tls, const void *bytes, size_t len);
/// The peer ended its stream: once the fed bytes are read, reads say HP_TLS_CLOSED.
void hp_tls_feed_eof(hp_tls *tls);
/// The ciphertext waiting to be sent: its length and address. The address stays valid (later
/// writes do not move those bytes) until hp_tls_output_sent; one send at a time.
size_t hp_tls_output(hp_tls *tls, const void **bytes);
/// `n` bytes of the output were sent: they leave it (an empty output holds no buffer).
void hp_tls_output_sent(hp_tls *tls, size_t n);
/// Bytes of output not yet sent.
size_t hp_tls_output_pending(const hp_tls *tls);
/// 1 if the peer's close_notify was read: its end of stream was a TLS close, not a bare TCP FIN
/// (which reads as HP_TLS_CLOSED too, and may have cut what it sent short).
int hp_tls_close_notify_received(const hp_tls *tls);
/// 1 while received bytes are lent to the engine (hp_tls_feed), which must not outlive them.
int hp_tls_input_lent(const hp_tls *tls);
/// Writes close_notify to the output (not waiting for the peer's): 0, or an HP_TLS_* code.
int hp_tls_shutdown(hp_tls *tls);
void hp_tls_free(hp_tls *tls);
/// An engine like hp_tls_new's whose records travel inside `outer`'s plaintext (TLS to a target
/// inside TLS to an https proxy, or inside a passthrough): feeding, output and end of stream go
/// to `outer`, which it owns from then on (hp_tls_free frees both). NULL on failure (outer is
/// then still the caller's).
hp_tls *hp_tls_new_over(hp_tls_ctx *ctx, const char *host, hp_tls *outer);
/// A passthrough engine: no TLS, writes are output as they are and input is read as it came
/// (the bytes of a proxy's tunnel handshake); its handshake is done at once.
hp_tls *hp_tls_new_plain(void);
/// The protocol the server chose by ALPN (lent, not NUL-terminated): its length, 0 if none.
size_t hp_tls_alpn(const hp_tls *tls, const unsigned char **name);
/// SSL objects alive in the process (hp_tls_new minus hp_tls_free).
long hp_tls_live_objects(void);
/// Describes the failure behind the last HP_TLS_* code on this thread (verify result or error
/// queue) into buf, and clears the error queue. Returns the length written.
int hp_tls_error_string(hp_tls *tls, int code, char *buf, size_t len);

/// Offers `session` (of the same context) for resumption; call before the handshake. The
/// engine takes its own reference: the caller still frees `session`. 0, or HP_TLS_ERROR.
int hp_tls_offer_session(hp_tls *tls, hp_tls_session *session);
/// The newest session the server issued on this connection since the last call (the caller
/// owns it), or NULL.
hp_tls_session *hp_tls_take_session(hp_tls *tls);
/// 1 if the handshake resumed an offered session.
int hp_tls_session_reused(const hp_tls *tls);
/// 1 if the session must be offered once only (a TLS 1.3 ticket).
int hp_tls_session_single_use(const hp_tls_session *session);
void hp_tls_session_free(hp_tls_session *session);
/// Sessions alive in the process (taken minus freed).
long hp_tls_live_sessions(void);

// ---------------------------------------------------------------- OpenSSL 3.0: a plain profile
/// A ClientHello shape, as OpenSSL's own knobs take it. Lists are OpenSSL names joined by ':'.
typedef struct {
    const char *tls13_ciphersuites;
    const char *tls12_cipher_list;
    const char *groups;
    const char *sigalgs;
    const unsigned char *alpn;  /* wire format */
    unsigned alpn_len;
    int min_version;            /* e.g. 0x0303 */
    int max_version;
    int status_request;         /* extension 5 */
    int signed_certificate_timestamp; /* extension 18 */
    int session_ticket;         /* extension 35 */
    int padding;                /* extension 21 */
    int encrypt_then_mac;       /* extension 22 */
} hp_tls_profile;

/// An OpenSSL client context: verification on when verify != 0, trusting ca_file (PEM) or the
/// system store, shaped by `profile`. NULL with the reason in err.
hp_tls_ctx *hp_openssl_ctx_new(const hp_tls_profile *profile, int verify, const char *ca_file, char *err, size_t errlen);

/// What a custom ClientHello extension carries.
#define HP_EXT_EMPTY 0        /* no bytes (a GREASE extension) */
#define HP_EXT_ONE_ZERO 1     /* one zero byte (Chrome's last GREASE extension) */
#define HP_EXT_ECH_GREASE 2   /* a random, well-formed ECH outer extension (draft-ietf-tls-esni GREASE) */

/// Adds an extension OpenSSL does not send itself (a GREASE code point, ECH GREASE) to every
/// ClientHello of an OpenSSL context; a server's answer to it in EncryptedExtensions is ignored.
int hp_openssl_ctx_add_extension(hp_tls_ctx *ctx, unsigned type, int payload);
/// Engines made from `ctx` from now on keep no session the server issues (an https proxy's:
/// offered to a target, it would link the two).
void hp_openssl_ctx_keep_no_sessions(hp_tls_ctx *ctx);

// ---------------------------------------------------------------- BoringSSL: browser profiles
/// A ClientHello shape as BoringSSL (the browsers' own library) builds it. Lists are IANA code
/// points in order; BoringSSL adds GREASE to ciphers, extensions, groups, versions and key
/// shares itself when `grease` is set. A TLS 1.2 cipher suite BoringSSL does not implement, a
/// signature algorithm it does not know or that is listed again, and padding are offered all
/// the same (tls_boringssl.c says how); a server cannot pick those.
typedef struct {
    const uint16_t *tls12_ciphers; size_t tls12_cipher_count;  /* TLS 1.3 suites are BoringSSL's three */
    const uint16_t *groups; size_t group_count;
    const uint16_t *key_shares; size_t key_share_count;        /* 0: BoringSSL's choice */
    const uint16_t *sigalgs; size_t sigalg_count;
    const uint16_t *cert_compression; size_t cert_compression_count;  /* 1 zlib, 2 brotli, 3 zstd */
    const unsigned char *alpn; unsigned alpn_len;              /* wire format */
    const unsigned char *alps; unsigned alps_len;              /* ALPN names with ALPS, wire format */
    int alps_new_codepoint;     /* ALPS as 0x44cd (Chrome 133+) instead of 0x4469 */
    int min_version, max_version;
    int grease;
    int permute_extensions;     /* a new extension order per connection (Chrome 110+) */
    int ech_grease;             /* extension 0xfe0d */
    int status_request;         /* extension 5 */
    int signed_certificate_timestamp; /* extension 18 */
    int session_ticket;         /* extension 35 */
    int padding;                /* extension 21, two zero bytes */
} hp_boringssl_profile;

/// A BoringSSL client context, as hp_openssl_ctx_new. NULL with the reason in err.
hp_tls_ctx *hp_boringssl_ctx_new(const hp_boringssl_profile *profile, int verify, const char *ca_file, char *err, size_t errlen);
/// BoringSSL's API version (BORINGSSL_API_VERSION) of the copy HotPool was built with.
int hp_boringssl_api_version(void);

// ---------------------------------------------------------------- content codings (zlib, brotli, zstd)
/// The HTTP content codings a decoder undoes.
#define HP_CODING_GZIP 1
#define HP_CODING_DEFLATE 2
#define HP_CODING_BR 3
#define HP_CODING_ZSTD 4
#define HP_DECODE_OK 0
#define HP_DECODE_ERROR (-1)

typedef struct hp_decoder hp_decoder;
/// A decoder of one coding (HP_CODING_*); NULL when out of memory or for an unknown coding.
hp_decoder *hp_decoder_new(int coding);
void hp_decoder_free(hp_decoder *decoder);
/// Decodes what it can of `in` into `out`: sets how many bytes it took and wrote, and returns
/// HP_DECODE_OK, or HP_DECODE_ERROR for corrupt input (then and ever after; see hp_decoder_error).
/// Taking nothing and writing nothing means it needs more input; a full `out`, that it has more.
int hp_decoder_run(hp_decoder *decoder, const uint8_t *in, size_t in_len, size_t *consumed, uint8_t *out,
                   size_t out_cap, size_t *produced);
/// Whether the input so far is a whole stream (or gzip members, or zstd frames): not cut short.
int hp_decoder_at_end(const hp_decoder *decoder);
/// Why it failed (static text).
const char *hp_decoder_error(const hp_decoder *decoder);

// ---------------------------------------------------------------- SHA-256 (OpenSSL)
#define HP_SHA256_BYTES 32
typedef struct hp_sha256 hp_sha256;
/// A SHA-256 digest under way; NULL when out of memory.
hp_sha256 *hp_sha256_new(void);
void hp_sha256_update(hp_sha256 *digest, const void *bytes, size_t count);
/// Writes the digest and frees `digest`.
void hp_sha256_final(hp_sha256 *digest, uint8_t out[HP_SHA256_BYTES]);

// ---------------------------------------------------------------- HTTP/2 (nghttp2)
/// A client session over nghttp2 with no socket (sans I/O): received bytes go in with
/// hp_h2_receive, bytes to send come out of hp_h2_output, and the frames' meaning is reported
/// through the callbacks while hp_h2_receive runs.
typedef struct hp_h2 hp_h2;

/// What a session reports; `user` is hp_h2_new's. A nonzero return from on_header or on_data
/// refuses the stream: it is reset, and on_stream_close reports it.
typedef struct {
    /// One response header field (pseudo-header fields first).
    int (*on_header)(void *user, int32_t stream, const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen);
    /// A header block ended (an interim or final response head, or trailers).
    void (*on_headers_end)(void *user, int32_t stream);
    int (*on_data)(void *user, int32_t stream, const uint8_t *bytes, size_t len);
    /// The server ended the stream (a HEADERS or DATA frame with END_STREAM).
    void (*on_end_stream)(void *user, int32_t stream);
    /// The stream ended: error_code 0 when it ended without a reset, or by a RST_STREAM with
    /// NO_ERROR (nghttp2 tells the two apart only by on_end_stream), else the reset's HTTP/2 error code.
    void (*on_stream_close)(void *user, int32_t stream, uint32_t error_code);
    void (*on_goaway)(void *user, int32_t last_stream_id, uint32_t error_code);
    /// The server's SETTINGS arrived; its SETTINGS_MAX_CONCURRENT_STREAMS now.
    void (*on_settings)(void *user, uint32_t max_concurrent_streams);
    /// The server acknowledged a PING (hp_h2_ping).
    void (*on_ping_ack)(void *user);
} hp_h2_callbacks;

typedef struct { int32_t id; uint32_t value; } hp_h2_setting;
/// The most settings a preface sends.
#define HP_H2_MAX_SETTINGS 16
/// nghttp2's codes for "the peer floods the session with frames to acknowledge faster than it
/// reads the acknowledgements" and "out of memory".
#define HP_H2_ERR_FLOODED (-904)
#define HP_H2_ERR_NOMEM (-901)
typedef struct { const uint8_t *name; size_t namelen; const uint8_t *value; size_t valuelen; } hp_h2_field;

/// A session whose preface is SETTINGS with `settings` in this order (at most
/// HP_H2_MAX_SETTINGS), then a connection WINDOW_UPDATE of window_increment (none if 0). Received
/// DATA is given back to the flow-control windows only through hp_h2_consume. NULL with the
/// nghttp2 code in *error when nghttp2 refuses the preface (a setting or increment out of range:
/// NGHTTP2_ERR_INVALID_ARGUMENT, NGHTTP2_ERR_FLOW_CONTROL) or is out of memory (HP_H2_ERR_NOMEM).
hp_h2 *hp_h2_new(const hp_h2_callbacks *callbacks, void *user, const hp_h2_setting *settings, size_t count,
                 uint32_t window_increment, int *error);
/// Queues a request: the fields in this order (copied), a body (copied; none if len is 0 and it
/// is not `streamed`) and, when weight > 0, a priority in its HEADERS frame. A `streamed` body's
/// bytes come later through hp_h2_body_append, its DATA waiting for them. Returns the stream id
/// or a negative nghttp2 code.
int32_t hp_h2_submit_request(hp_h2 *h2, const hp_h2_field *fields, size_t count, const uint8_t *body, size_t len,
                             int streamed, int weight, int32_t dependency, int exclusive);
/// Adds `len` bytes (copied) to `stream`'s streamed body, and with `end` ends it (END_STREAM
/// follows its last bytes); its DATA goes out as flow control lets it. 0, or a negative nghttp2
/// code (NGHTTP2_ERR_INVALID_ARGUMENT: no streamed body open on that stream).
int hp_h2_body_append(hp_h2 *h2, int32_t stream, const uint8_t *bytes, size_t len, int end);
/// Bytes of `stream`'s body not yet framed as DATA (0 for an unknown stream).
size_t hp_h2_body_waiting(hp_h2 *h2, int32_t stream);
/// Takes received bytes (the callbacks run). 0, or a negative nghttp2 code: the session is broken
/// (HP_H2_ERR_FLOODED: the peer sent more PING or SETTINGS frames than the session could queue
/// acknowledgements for, which happens when the caller stops taking the session's output).
int hp_h2_receive(hp_h2 *h2, const uint8_t *bytes, size_t len);
/// The next bytes to send (the frames nghttp2 has queued, joined, up to about 16 KiB), lent
/// until the next call on the session: their length (0 = none) or a negative nghttp2 code.
long hp_h2_output(hp_h2 *h2, const uint8_t **bytes);
/// `len` bytes of DATA the session delivered were consumed: `stream`'s window opens by that
/// much (stream 0: the connection's window). Each byte is given back to both, separately, so a
/// caller can hold a stream's window shut while the connection's stays open. 0, or a negative
/// nghttp2 code.
int hp_h2_consume(hp_h2 *h2, int32_t stream, size_t len);
int hp_h2_reset_stream(hp_h2 *h2, int32_t stream, uint32_t error_code);
/// DATA bytes the server may still send on `stream` before a window opens again: the least of
/// its window and the connection's (0 once the server ended the stream, or for a stream the
/// session no longer knows).
long hp_h2_stream_receive_window(hp_h2 *h2, int32_t stream);
int hp_h2_ping(hp_h2 *h2);
/// Queues a GOAWAY (NO_ERROR): the session ends once it is sent.
int hp_h2_goaway(hp_h2 *h2);
/// 1 while the session still reads or writes (no GOAWAY ended it, no fatal error).
int hp_h2_is_open(hp_h2 *h2);
void hp_h2_free(hp_h2 *h2);
/// nghttp2's text for a negative library code, and for an HTTP/2 error code.
const char *hp_h2_error_string(int code);
const char *hp_h2_error_code_name(uint32_t error_code);
/// Sessions alive in the process (hp_h2_new minus hp_h2_free).
long hp_h2_live_sessions(void);

#endif
