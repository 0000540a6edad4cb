// OpenSSL 3.0 client calls, non-blocking, with WANT_READ / WANT_WRITE mapped to plain codes.
#include "CShims.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_long live_ssl_objects;

// The read budget of this thread (one reactor per thread): < 0 = none. See hp_tls_budget_begin.
static _Thread_local long budget_left = -1;
static _Thread_local int budget_refused;

void hp_tls_budget_begin(long bytes) {
    budget_left = bytes;
    budget_refused = 0;
}

int hp_tls_budget_end(void) {
    budget_left = -1;
    return budget_refused;
}

// On every read of a connection's socket BIO: refuses it as a retryable read once the budget is
// spent (OpenSSL then reports WANT_READ), and counts what it read.
static long budget_callback(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret,
                            size_t *processed) {
    (void)argp; (void)len; (void)argi; (void)argl;
    if (budget_left < 0) return ret;
    if (oper == BIO_CB_READ) {
        if (budget_left > 0) return ret;
        budget_refused = 1;
        BIO_clear_retry_flags(b);
        BIO_set_retry_read(b);
        return -1;
    }
    if (oper == (BIO_CB_READ | BIO_CB_RETURN) && ret > 0 && processed) {
        budget_left -= (long)*processed;
        if (budget_left < 0) budget_left = 0;
    }
    return ret;
}

SSL_CTX *hp_tls_ctx_new(int verify, const char *ca_file, char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // Buffers are released while a connection is idle; a hot pool holds many idle connections.
    // Swift may move a retried write's buffer, so allow that too.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // EOF without close_notify reads as a clean close: close-delimited HTTP bodies need it.
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    // Read whole socket buffers, not a record header then its body: every response is read on
    // until WANT_READ, so this keeps that to one recv(2) beyond the data.
    SSL_CTX_set_read_ahead(ctx, 1);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) goto fail;
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
fail:
    if (err && errlen) {
        unsigned long e = ERR_get_error();
        if (e) ERR_error_string_n(e, err, errlen);
        else snprintf(err, errlen, "SSL_CTX_new failed");
    }
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

void hp_tls_ctx_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

SSL *hp_tls_new(SSL_CTX *ctx, int fd, const char *host) {
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return NULL;
    int is_ip = hp_ip_family(host) != 0;
    // RFC 6066: SNI carries names, never IP literals; an IP is verified against the IP SANs.
    if ((!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1) || SSL_set_fd(ssl, fd) != 1 ||
        (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE &&
         (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) : SSL_set1_host(ssl, host)) != 1)) {
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_callback_ex(SSL_get_rbio(ssl), budget_callback);
    SSL_set_connect_state(ssl);
    atomic_fetch_add(&live_ssl_objects, 1);
    return ssl;
}

// Maps the result of an SSL_* call to n (> 0) or an HP_TLS_* code.
static int map_result(SSL *ssl, int rc) {
    if (rc > 0) return rc;
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ: return HP_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return HP_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return HP_TLS_CLOSED;
    case SSL_ERROR_SYSCALL: return errno == 0 ? HP_TLS_CLOSED : HP_TLS_SYSCALL;
    default: return HP_TLS_ERROR;
    }
}

int hp_tls_handshake(SSL *ssl) {
    ERR_clear_error();
    errno = 0;
    int rc = map_result(ssl, SSL_do_handshake(ssl));
    return rc > 0 ? 0 : rc;
}

int hp_tls_read(SSL *ssl, void *buf, int len) {
    ERR_clear_error();
    errno = 0;
    return map_result(ssl, SSL_read(ssl, buf, len));
}

int hp_tls_write(SSL *ssl, const void *buf, int len) {
    ERR_clear_error();
    errno = 0;
    return map_result(ssl, SSL_write(ssl, buf, len));
}

int hp_tls_has_pending(SSL *ssl) { return SSL_has_pending(ssl); }

int hp_tls_shutdown(SSL *ssl) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_shutdown(ssl);  // 0: our close_notify is out; we do not wait for the peer's
    return rc >= 0 ? 0 : map_result(ssl, rc);
}

void hp_tls_free(SSL *ssl) {
    if (!ssl) return;
    SSL_free(ssl);
    atomic_fetch_sub(&live_ssl_objects, 1);
}

long hp_tls_live_objects(void) { return atomic_load(&live_ssl_objects); }

int hp_tls_error_string(SSL *ssl, int code, char *buf, size_t len) {
    if (!buf || len == 0) return 0;
    buf[0] = 0;
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    if (verify != X509_V_OK) {
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
    } else if (code == HP_TLS_SYSCALL && e == 0) {
        snprintf(buf, len, "%s", strerror(errno));
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


int hp_tls_ctx_apply_profile(SSL_CTX *ctx, const hp_tls_profile *p, char *err, size_t errlen) {
    const char *what = NULL;
    if (SSL_CTX_set_min_proto_version(ctx, p->min_version) != 1) what = "min version";
    else if (SSL_CTX_set_max_proto_version(ctx, p->max_version) != 1) what = "max version";
    else if (p->tls13_ciphersuites && SSL_CTX_set_ciphersuites(ctx, p->tls13_ciphersuites) != 1) what = "TLS 1.3 cipher suites";
    else if (p->tls12_cipher_list && SSL_CTX_set_cipher_list(ctx, p->tls12_cipher_list) != 1) what = "TLS 1.2 cipher list";
    else if (p->groups && SSL_CTX_set1_groups_list(ctx, p->groups) != 1) what = "groups";
    else if (p->sigalgs && SSL_CTX_set1_sigalgs_list(ctx, p->sigalgs) != 1) what = "signature algorithms";
    else if (p->alpn_len && SSL_CTX_set_alpn_protos(ctx, p->alpn, p->alpn_len) != 0) what = "ALPN";
    else if (p->status_request && SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp) != 1) what = "status_request";
    else if (p->signed_certificate_timestamp && SSL_CTX_enable_ct(ctx, SSL_CT_VALIDATION_PERMISSIVE) != 1) what = "signed_certificate_timestamp";
    if (what) {
        unsigned long e = ERR_get_error();
        char reason[160] = "";
        if (e) ERR_error_string_n(e, reason, sizeof reason);
        if (err && errlen) snprintf(err, errlen, "%s: %s", what, reason);
        ERR_clear_error();
        return HP_TLS_ERROR;
    }
    uint64_t set = 0, clear = 0;
    *(p->session_ticket ? &clear : &set) |= SSL_OP_NO_TICKET;
    *(p->padding ? &set : &clear) |= SSL_OP_TLSEXT_PADDING;
    *(p->encrypt_then_mac ? &clear : &set) |= SSL_OP_NO_ENCRYPT_THEN_MAC;
    SSL_CTX_clear_options(ctx, clear);
    SSL_CTX_set_options(ctx, set);
    return 0;
}

// Builds a GREASE ECH "outer" ClientHello extension: type outer (0), HPKE suite
// HKDF-SHA256 / AES-128-GCM, a random config id, a 32-byte random enc, a random payload.
static size_t ech_grease(unsigned char *out) {
    static const size_t payload_lengths[] = {144, 176, 208, 240};
    unsigned char r[2];
    RAND_bytes(r, sizeof r);
    size_t payload = payload_lengths[r[0] & 3];
    size_t n = 0;
    out[n++] = 0;                       // ECHClientHelloType outer
    out[n++] = 0; out[n++] = 1;         // kdf_id HKDF-SHA256
    out[n++] = 0; out[n++] = 1;         // aead_id AES-128-GCM
    out[n++] = r[1];                    // config_id
    out[n++] = 0; out[n++] = 32;        // enc length
    RAND_bytes(out + n, 32);
    n += 32;
    out[n++] = (unsigned char)(payload >> 8);
    out[n++] = (unsigned char)payload;
    RAND_bytes(out + n, (int)payload);
    return n + payload;
}

static int add_extension(SSL *s, unsigned type, unsigned context, const unsigned char **out, size_t *outlen,
                         X509 *x, size_t chainidx, int *al, void *add_arg) {
    (void)s; (void)type; (void)x; (void)chainidx; (void)al;
    if (context != SSL_EXT_CLIENT_HELLO) return 0;  // nothing to send elsewhere
    int kind = (int)(intptr_t)add_arg;
    if (kind == HP_EXT_EMPTY) {
        *out = NULL;
        *outlen = 0;
        return 1;
    }
    unsigned char *buf = OPENSSL_malloc(512);
    if (!buf) return -1;
    if (kind == HP_EXT_ONE_ZERO) {
        buf[0] = 0;
        *outlen = 1;
    } else {
        *outlen = ech_grease(buf);
    }
    *out = buf;
    return 1;
}

static void free_extension(SSL *s, unsigned type, unsigned context, const unsigned char *out, void *add_arg) {
    (void)s; (void)type; (void)context; (void)add_arg;
    OPENSSL_free((void *)out);
}

static int ignore_extension(SSL *s, unsigned type, unsigned context, const unsigned char *in, size_t inlen,
                            X509 *x, size_t chainidx, int *al, void *parse_arg) {
    (void)s; (void)type; (void)context; (void)in; (void)inlen; (void)x; (void)chainidx; (void)al; (void)parse_arg;
    return 1;
}

int hp_tls_ctx_add_extension(SSL_CTX *ctx, unsigned type, int payload) {
    unsigned context = SSL_EXT_CLIENT_HELLO | SSL_EXT_TLS1_3_ENCRYPTED_EXTENSIONS;
    int ok = SSL_CTX_add_custom_ext(ctx, type, context, add_extension, free_extension,
                                    (void *)(intptr_t)payload, ignore_extension, NULL);
    ERR_clear_error();
    return ok == 1 ? 0 : HP_TLS_ERROR;
}
