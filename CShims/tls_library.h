// The SSL API calls of the TLS engine, written once and compiled against each library:
// tls_openssl.c includes this after OpenSSL's headers, tls_boringssl.c after BoringSSL's (whose
// headers rename every symbol with a prefix, so the two never clash in one process). The
// including file defines `configure_ssl` (settings of its library applied to each new SSL) and
// `free_settings` first. Private to CShims.
#include "tls_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int configure_ssl(hp_tls_ctx *ctx, SSL *ssl);
static void free_settings(void *settings);

// BIO_CTRL_EOF answers 0 even after the peer's end of stream, so the library never handles a
// bare FIN itself (as a fatal unexpected-EOF error, or as a close it cannot tell from
// close_notify): the read fails with SSL_ERROR_SYSCALL and map_result decides.
static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)bio; (void)num; (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_read(BIO *bio, char *buf, int len) {
    BIO_clear_retry_flags(bio);
    int n = hp_tls_take_input(BIO_get_data(bio), buf, len);
    if (n < 0) BIO_set_retry_read(bio);
    return n;
}

static int bio_write(BIO *bio, const char *buf, int len) {
    BIO_clear_retry_flags(bio);
    return hp_tls_append_output(BIO_get_data(bio), buf, len);
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_method_once = PTHREAD_ONCE_INIT;

static void make_bio_method(void) {
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hotpool memory");
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
}

// A session the server issued: kept on its engine until hp_tls_take_session.
static int new_session(SSL *ssl, SSL_SESSION *session) {
    return hp_tls_keep_session(SSL_get_app_data(ssl), session) == 0;  // 1: the reference is ours
}

// Writes what failed and the library's reason into err, and clears the error queue.
static void fail_reason(const char *what, char *err, size_t errlen) {
    if (err && errlen) {
        unsigned long e = ERR_get_error();
        char reason[160] = "";
        if (e) ERR_error_string_n(e, reason, sizeof reason);
        snprintf(err, errlen, "%s%s%s", what, *reason ? ": " : "", reason);
    }
    ERR_clear_error();
}

// A client SSL_CTX with what every profile shares: verification, buffers released while idle,
// and the sessions servers issue handed to new_session. NULL with the reason in err.
static SSL_CTX *client_ctx_new(int verify, const char *ca_file, char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fail_reason("SSL_CTX_new", err, errlen);
        return NULL;
    }
    // Buffers are released while a connection is idle; a hot pool holds many idle connections.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // Take whole lent spans, not a record header then its body.
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            fail_reason("trusted certificates", err, errlen);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

static void ctx_free(hp_tls_ctx *ctx) {
    SSL_CTX_free(ctx->ctx);
    free_settings(ctx->settings);
    free(ctx);
}

static int ssl_new(hp_tls_ctx *ctx, hp_tls *t, const char *host) {
    pthread_once(&bio_method_once, make_bio_method);
    if (!bio_method) return HP_TLS_ERROR;
    SSL *ssl = SSL_new(ctx->ctx);
    BIO *bio = BIO_new(bio_method);
    if (!ssl || !bio) {
        BIO_free(bio);
        goto fail;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio);  // one BIO both ways: the SSL object owns it
    SSL_set_app_data(ssl, t);
    int is_ip = hp_ip_family(host) != 0;
    // RFC 6066: SNI carries names, never IP literals; an IP is verified against the IP SANs.
    if ((!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1) ||
        (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE &&
         (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) : SSL_set1_host(ssl, host)) != 1) ||
        configure_ssl(ctx, ssl) != 0)
        goto fail;
    SSL_set_connect_state(ssl);
    t->ssl = ssl;
    return 0;
fail:
    ERR_clear_error();
    SSL_free(ssl);
    return HP_TLS_ERROR;
}

static void ssl_free(void *ssl) { SSL_free(ssl); }

// Maps the result of an SSL_* call to n (> 0) or an HP_TLS_* code.
static int map_result(hp_tls *t, int rc) {
    if (rc > 0) return rc;
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ: return HP_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return HP_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return HP_TLS_CLOSED;
    // The BIO's own failure (out of memory) is an error; only the peer's end of stream (a bare
    // FIN) is a close, which hp_tls_close_notify_received tells from a TLS close.
    case SSL_ERROR_SYSCALL: return t->in_eof && ERR_peek_error() == 0 ? HP_TLS_CLOSED : HP_TLS_ERROR;
    default: return HP_TLS_ERROR;
    }
}

static int handshake(hp_tls *t) {
    ERR_clear_error();
    int rc = map_result(t, SSL_do_handshake(t->ssl));
    return rc > 0 ? 0 : rc;
}

static int read_plaintext(hp_tls *t, void *buf, int len) {
    ERR_clear_error();
    return map_result(t, SSL_read(t->ssl, buf, len));
}

static int write_plaintext(hp_tls *t, const void *buf, int len) {
    ERR_clear_error();
    return map_result(t, SSL_write(t->ssl, buf, len));
}

static int shutdown_tls(hp_tls *t) {
    ERR_clear_error();
    int rc = SSL_shutdown(t->ssl);  // 0: our close_notify is written out; we do not wait for the peer's
    return rc >= 0 ? 0 : map_result(t, rc);
}

// Set only by a close_notify. A bare FIN reaches the library as a BIO read of 0 whose BIO_eof is
// false (bio_ctrl answers 0 to BIO_CTRL_EOF), so it fails the read with SSL_ERROR_SYSCALL, which
// map_result reads as a close; the library neither sets this flag for it nor raises its own
// unexpected-EOF error.
static int close_notify_received(const hp_tls *t) { return (SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN) != 0; }

static size_t alpn(const hp_tls *t, const unsigned char **name) {
    unsigned len = 0;
    SSL_get0_alpn_selected(t->ssl, name, &len);
    return len;
}

static int error_string(hp_tls *t, int code, char *buf, size_t len) {
    long verify = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    if (verify != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
    } else if (e) {
        ERR_error_string_n(e, buf, len);
    } else if (code == HP_TLS_CLOSED) {
        snprintf(buf, len, "connection closed by peer");
    } else {
        snprintf(buf, len, "TLS error %d", code);
    }
    ERR_clear_error();
    return (int)strlen(buf);
}

static int offer_session(hp_tls *t, void *session) { return SSL_set_session(t->ssl, session) == 1 ? 0 : HP_TLS_ERROR; }

static int session_reused(const hp_tls *t) { return SSL_session_reused((SSL *)t->ssl) == 1; }

// TLS 1.3 tickets are offered once (RFC 8446 appendix C.4), as browsers do.
static int session_single_use(void *session) { return SSL_SESSION_get_protocol_version(session) >= TLS1_3_VERSION; }

static void session_free(void *session) { SSL_SESSION_free(session); }

static const hp_tls_library library = {
    .ssl_new = ssl_new, .ssl_free = ssl_free, .ctx_free = ctx_free, .handshake = handshake,
    .read = read_plaintext, .write = write_plaintext, .shutdown = shutdown_tls,
    .close_notify_received = close_notify_received, .alpn = alpn, .error_string = error_string,
    .offer_session = offer_session, .session_reused = session_reused,
    .session_single_use = session_single_use, .session_free = session_free,
};

// A context of this library over `ssl_ctx`, taking it and `settings` (NULL with both freed when
// out of memory).
static hp_tls_ctx *wrap_ctx(SSL_CTX *ssl_ctx, void *settings) {
    hp_tls_ctx *ctx = malloc(sizeof *ctx);
    if (!ctx) {
        SSL_CTX_free(ssl_ctx);
        free_settings(settings);
        return NULL;
    }
    ctx->library = &library;
    ctx->ctx = ssl_ctx;
    ctx->settings = settings;
    return ctx;
}
