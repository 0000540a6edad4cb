// The passthrough engine (hp_tls_new_plain): the TLS engine's calls with no TLS, so the bytes of
// a proxy's tunnel handshake travel the same paths as ciphertext, and a target's TLS engine can
// then run inside it (hp_tls_new_over).
#include "tls_engine.h"

#include <stdio.h>
#include <stdlib.h>

static void plain_ssl_free(void *ssl) { (void)ssl; }

static int plain_handshake(hp_tls *t) {
    (void)t;
    return 0;
}

static int plain_read(hp_tls *t, void *buf, int len) {
    int n = hp_tls_take_input(t, buf, len);
    return n > 0 ? n : n == 0 ? HP_TLS_CLOSED : HP_TLS_WANT_READ;
}

static int plain_write(hp_tls *t, const void *buf, int len) {
    return hp_tls_append_output(t, buf, len) == len ? len : HP_TLS_ERROR;
}

static int plain_shutdown(hp_tls *t) {
    (void)t;
    return 0;
}

static int plain_close_notify_received(const hp_tls *t) {
    (void)t;
    return 0;
}

static size_t plain_alpn(const hp_tls *t, const unsigned char **name) {
    (void)t;
    *name = NULL;
    return 0;
}

static int plain_error_string(hp_tls *t, int code, char *buf, size_t len) {
    (void)t;
    return snprintf(buf, len, "%s", code == HP_TLS_CLOSED ? "closed" : "out of memory");
}

static int plain_session_reused(const hp_tls *t) {
    (void)t;
    return 0;
}

static const hp_tls_library plain_library = {
    // No context makes a passthrough engine and it has no sessions: the calls over those are left out.
    .ssl_free = plain_ssl_free,
    .handshake = plain_handshake,
    .read = plain_read,
    .write = plain_write,
    .shutdown = plain_shutdown,
    .close_notify_received = plain_close_notify_received,
    .alpn = plain_alpn,
    .error_string = plain_error_string,
    .session_reused = plain_session_reused,
};

hp_tls *hp_tls_new_plain(void) {
    hp_tls *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->library = &plain_library;
    hp_tls_count_object(1);
    return t;
}
