// The TLS engine's library-independent half: lent input, the output buffer, sessions, and the
// calls that go to the engine's library (OpenSSL in tls_openssl.c, BoringSSL in tls_boringssl.c).
#define _GNU_SOURCE  // memmem
#include "tls_engine.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long live_ssl_objects;
static atomic_long live_sessions;

void hp_tls_count_object(int delta) { atomic_fetch_add(&live_ssl_objects, delta); }

long hp_tls_live_objects(void) { return atomic_load(&live_ssl_objects); }

long hp_tls_live_sessions(void) { return atomic_load(&live_sessions); }

// The engine that meets the socket: t itself, or the outermost engine t's records travel in.
static hp_tls *transport(hp_tls *t) {
    while (t->outer) t = t->outer;
    return t;
}

int hp_tls_take_input(hp_tls *t, char *buf, int len) {
    if (t->outer) {  // the outer engine's plaintext; its close or failure ends this stream
        int n = hp_tls_read(t->outer, buf, len);
        // A close (not a failure) is this stream's end too: a bare FIN reads as HP_TLS_CLOSED here.
        if (n == HP_TLS_CLOSED) t->in_eof = 1;
        return n > 0 ? n : n == HP_TLS_WANT_READ ? -1 : 0;
    }
    if (t->in_len == 0) return t->in_eof ? 0 : -1;
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

// Writes an inner engine's records to its outer engine as plaintext, the queued message rewritten
// (at `rewrite_at` in buf) if there is one: len, or -1.
static int write_to_outer(hp_tls *t, const char *buf, int len, const unsigned char *rewrite_at) {
    char *rewritten = NULL;
    if (rewrite_at) {
        if (!(rewritten = malloc((size_t)len))) return -1;
        memcpy(rewritten, buf, (size_t)len);
        memcpy(rewritten + (rewrite_at - (const unsigned char *)buf), t->rewrite_to, t->rewrite_len);
        hp_tls_rewrite_output(t, NULL, NULL, 0);
    }
    int n = hp_tls_write(t->outer, rewritten ? rewritten : buf, len);
    free(rewritten);
    return n == len ? len : -1;
}

int hp_tls_append_output(hp_tls *t, const char *buf, int len) {
    // The message to rewrite goes out in the first write after it is queued; a write without it
    // (a ClientHello split over records, over 16 KB) fails, so its bytes never go out as they were.
    unsigned char *rewrite_at = NULL;
    if (t->rewrite_len && !(rewrite_at = memmem(buf, (size_t)len, t->rewrite_from, t->rewrite_len))) return -1;
    if (t->outer) return write_to_outer(t, buf, len, rewrite_at);
    size_t need = t->out_len + (size_t)len;
    if (need > t->out_cap) {
        // Small first: a close_notify is 24 bytes and a request a few hundred, and closing
        // thousands of connections at once should not fault in a page each.
        size_t cap = t->out_cap ? t->out_cap * 2 : 512;
        while (cap < need) cap *= 2;
        unsigned char *grown;
        if (t->lent && !t->retired) {  // the lent bytes stay where the send reads them
            grown = malloc(cap);
            if (!grown) return -1;
            memcpy(grown, t->out, t->out_len);
            t->retired = t->out;
        } else {
            grown = realloc(t->out, cap);
            if (!grown) return -1;
        }
        t->out = grown;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, buf, (size_t)len);
    if (rewrite_at) {
        memcpy(t->out + t->out_len + (rewrite_at - (const unsigned char *)buf), t->rewrite_to, t->rewrite_len);
        hp_tls_rewrite_output(t, NULL, NULL, 0);
    }
    t->out_len += (size_t)len;
    return len;
}

void hp_tls_rewrite_output(hp_tls *t, unsigned char *from, unsigned char *to, size_t len) {
    free(t->rewrite_from);
    free(t->rewrite_to);
    t->rewrite_from = from;
    t->rewrite_to = to;
    t->rewrite_len = len;
}

int hp_tls_keep_session(hp_tls *t, void *session) {
    hp_tls_session *kept = malloc(sizeof *kept);
    if (!kept) return -1;
    kept->library = t->library;
    kept->session = session;
    atomic_fetch_add(&live_sessions, 1);
    hp_tls_session_free(t->new_session);
    t->new_session = kept;
    return 0;
}

void hp_tls_ctx_free(hp_tls_ctx *ctx) {
    if (ctx) ctx->library->ctx_free(ctx);
}

hp_tls *hp_tls_new(hp_tls_ctx *ctx, const char *host) {
    hp_tls *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->library = ctx->library;
    if (ctx->library->ssl_new(ctx, t, host) != 0) {
        free(t);
        return NULL;
    }
    hp_tls_count_object(1);
    return t;
}

hp_tls *hp_tls_new_over(hp_tls_ctx *ctx, const char *host, hp_tls *outer) {
    hp_tls *t = hp_tls_new(ctx, host);
    if (t) t->outer = outer;
    return t;
}

void hp_tls_free(hp_tls *t) {
    if (!t) return;
    hp_tls_free(t->outer);
    t->library->ssl_free(t->ssl);
    hp_tls_session_free(t->new_session);
    hp_tls_rewrite_output(t, NULL, NULL, 0);
    free(t->out);
    free(t->retired);
    free(t);
    hp_tls_count_object(-1);
}

int hp_tls_handshake(hp_tls *t) { return t->library->handshake(t); }

int hp_tls_read(hp_tls *t, void *buf, int len) { return t->library->read(t, buf, len); }

int hp_tls_write(hp_tls *t, const void *buf, int len) { return t->library->write(t, buf, len); }

int hp_tls_shutdown(hp_tls *t) { return t->library->shutdown(t); }

int hp_tls_close_notify_received(const hp_tls *t) { return t->library->close_notify_received(t); }

size_t hp_tls_alpn(const hp_tls *t, const unsigned char **name) { return t->library->alpn(t, name); }

int hp_tls_error_string(hp_tls *t, int code, char *buf, size_t len) {
    if (!buf || len == 0) return 0;
    buf[0] = 0;
    return t ? t->library->error_string(t, code, buf, len) : 0;
}

void hp_tls_feed(hp_tls *t, const void *bytes, size_t len) {
    t = transport(t);
    t->in = len ? bytes : NULL;
    t->in_len = len;
}

void hp_tls_feed_eof(hp_tls *t) { transport(t)->in_eof = 1; }

size_t hp_tls_output(hp_tls *t, const void **bytes) {
    t = transport(t);
    *bytes = t->out;
    t->lent = t->out_len;
    return t->out_len;
}

void hp_tls_output_sent(hp_tls *t, size_t n) {
    t = transport(t);
    free(t->retired);
    t->retired = NULL;
    if (n > t->out_len) n = t->out_len;
    memmove(t->out, t->out + n, t->out_len - n);
    t->out_len -= n;
    t->lent = 0;
    if (t->out_len == 0) {  // an idle connection holds no buffer
        free(t->out);
        t->out = NULL;
        t->out_cap = 0;
    }
}

size_t hp_tls_output_pending(const hp_tls *t) { return transport((hp_tls *)t)->out_len; }

int hp_tls_input_lent(const hp_tls *t) { return transport((hp_tls *)t)->in != NULL; }

int hp_tls_offer_session(hp_tls *t, hp_tls_session *session) {
    if (!session || session->library != t->library) return HP_TLS_ERROR;
    return t->library->offer_session(t, session->session);
}

hp_tls_session *hp_tls_take_session(hp_tls *t) {
    hp_tls_session *taken = t->new_session;
    t->new_session = NULL;
    return taken;
}

int hp_tls_session_reused(const hp_tls *t) { return t->library->session_reused(t); }

int hp_tls_session_single_use(const hp_tls_session *s) { return s->library->session_single_use(s->session); }

void hp_tls_session_free(hp_tls_session *s) {
    if (!s) return;
    s->library->session_free(s->session);
    free(s);
    atomic_fetch_sub(&live_sessions, 1);
}
