// The TLS engine's parts that do not depend on the library (the lent input, the output buffer),
// and the table of calls each library (tls_openssl.c, tls_boringssl.c) fills. Private to CShims.
#ifndef HOTPOOL_TLS_ENGINE_H
#define HOTPOOL_TLS_ENGINE_H

#include "CShims.h"

typedef struct hp_tls_library hp_tls_library;

struct hp_tls {
    const hp_tls_library *library;
    void *ssl;  // the library's SSL
    // The lent input span, and whether the peer's end of the stream came after it.
    const unsigned char *in;
    size_t in_len;
    int in_eof;
    // Ciphertext to send: `out_len` bytes at `out`. While a send of the first `lent` of them is in
    // flight their address must not change: a write that needs more room then moves the bytes to
    // a new buffer and keeps the old one (`retired`) until hp_tls_output_sent.
    unsigned char *out;
    size_t out_len, out_cap, lent;
    unsigned char *retired;
    // The newest session the server issued, until hp_tls_take_session.
    hp_tls_session *new_session;
    // A handshake message the library hashed in a rewritten form (tls_boringssl.c's offered code
    // points): the next output holds its bytes as the library wrote them (`rewrite_from`), and
    // `rewrite_to` goes out in their place (hp_tls_append_output).
    unsigned char *rewrite_from, *rewrite_to;
    size_t rewrite_len;
    // The engine this one's records travel in (an https proxy's TLS, or a passthrough), owned;
    // NULL when they go to the socket. Input is fed to it and output taken from it.
    hp_tls *outer;
};

struct hp_tls_ctx {
    const hp_tls_library *library;
    void *ctx;       // the library's SSL_CTX
    void *settings;  // what the library applies to each SSL, or NULL
};

struct hp_tls_session {
    const hp_tls_library *library;
    void *session;  // the library's SSL_SESSION
};

// One library's calls, over its own SSL, SSL_CTX and SSL_SESSION.
struct hp_tls_library {
    // Makes t->ssl over t's memory BIO; 0, or HP_TLS_ERROR.
    int (*ssl_new)(hp_tls_ctx *ctx, hp_tls *t, const char *host);
    void (*ssl_free)(void *ssl);
    void (*ctx_free)(hp_tls_ctx *ctx);
    int (*handshake)(hp_tls *t);
    int (*read)(hp_tls *t, void *buf, int len);
    int (*write)(hp_tls *t, const void *buf, int len);
    int (*shutdown)(hp_tls *t);
    int (*close_notify_received)(const hp_tls *t);
    size_t (*alpn)(const hp_tls *t, const unsigned char **name);
    int (*error_string)(hp_tls *t, int code, char *buf, size_t len);
    int (*offer_session)(hp_tls *t, void *session);
    int (*session_reused)(const hp_tls *t);
    int (*session_single_use)(void *session);
    void (*session_free)(void *session);
};

// What the memory BIO of either library does with t's buffers.
// Copies lent input into buf: n > 0, 0 at the peer's end of stream, -1 when more must be fed.
int hp_tls_take_input(hp_tls *t, char *buf, int len);
// Appends to the output: len, or -1 when out of memory or when a message to rewrite
// (hp_tls_rewrite_output) is not in it.
int hp_tls_append_output(hp_tls *t, const char *buf, int len);
// The next output must hold `from`, and sends `to` (both `len` bytes) in its place; takes both
// buffers (malloc'd) and frees them once done, or with t.
void hp_tls_rewrite_output(hp_tls *t, unsigned char *from, unsigned char *to, size_t len);
// A session the server issued on t replaces the one not yet taken; 0, or -1 when out of memory.
int hp_tls_keep_session(hp_tls *t, void *session);
// Counts SSL objects made and freed.
void hp_tls_count_object(int delta);

#endif
