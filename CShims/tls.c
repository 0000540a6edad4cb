// OpenSSL 3.0 client calls over memory (no socket), with WANT_READ / WANT_WRITE mapped to plain codes.
#include "CShims.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_long live_ssl_objects;

// A connection's TLS engine: the SSL object over one memory BIO (sans-I/O). Ciphertext comes in
// as spans the caller lends (hp_tls_feed) and goes out through `out`, which the caller sends.
struct hp_tls {
    SSL *ssl;
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
};

// BIO_CTRL_EOF answers 0 even after the peer's end of stream, so OpenSSL never handles a bare
// FIN itself (as a fatal unexpected-EOF error, or with SSL_OP_IGNORE_UNEXPECTED_EOF as a close it
// cannot tell from close_notify): the read fails with SSL_ERROR_SYSCALL and map_result decides.
static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)bio; (void)num; (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_read(BIO *bio, char *buf, int len) {
    hp_tls *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (t->in_len == 0) {
        if (t->in_eof) return 0;
        BIO_set_retry_read(bio);
        return -1;
    }
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static int bio_write(BIO *bio, const char *buf, int len) {
    hp_tls *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
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
    t->out_len += (size_t)len;
    return len;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_method_once = PTHREAD_ONCE_INIT;

static void make_bio_method(void) {
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hotpool memory");
    BIO_meth_set_read(bio_method, bio_read);
    BIO_meth_set_write(bio_method, bio_write);
    BIO_meth_set_ctrl(bio_method, bio_ctrl);
}

SSL_CTX *hp_tls_ctx_new(int verify, const char *ca_file, char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // Buffers are released while a connection is idle; a hot pool holds many idle connections.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // Take whole lent spans, not a record header then its body.
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

hp_tls *hp_tls_new(SSL_CTX *ctx, const char *host) {
    pthread_once(&bio_method_once, make_bio_method);
    hp_tls *t = calloc(1, sizeof *t);
    if (!t || !bio_method) goto fail;
    t->ssl = SSL_new(ctx);
    BIO *bio = BIO_new(bio_method);
    if (!t->ssl || !bio) {
        BIO_free(bio);
        goto fail;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio);  // one BIO both ways: the SSL object owns it
    int is_ip = hp_ip_family(host) != 0;
    // RFC 6066: SNI carries names, never IP literals; an IP is verified against the IP SANs.
    if ((!is_ip && SSL_set_tlsext_host_name(t->ssl, host) != 1) ||
        (SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE &&
         (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) : SSL_set1_host(t->ssl, host)) != 1))
        goto fail;
    SSL_set_connect_state(t->ssl);
    atomic_fetch_add(&live_ssl_objects, 1);
    return t;
fail:
    ERR_clear_error();
    if (t) SSL_free(t->ssl);
    free(t);
    return NULL;
}

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

int hp_tls_handshake(hp_tls *t) {
    ERR_clear_error();
    int rc = map_result(t, SSL_do_handshake(t->ssl));
    return rc > 0 ? 0 : rc;
}

int hp_tls_read(hp_tls *t, void *buf, int len) {
    ERR_clear_error();
    return map_result(t, SSL_read(t->ssl, buf, len));
}

int hp_tls_write(hp_tls *t, const void *buf, int len) {
    ERR_clear_error();
    return map_result(t, SSL_write(t->ssl, buf, len));
}

void hp_tls_feed(hp_tls *t, const void *bytes, size_t len) {
    t->in = len ? bytes : NULL;
    t->in_len = len;
}

void hp_tls_feed_eof(hp_tls *t) { t->in_eof = 1; }

size_t hp_tls_output(hp_tls *t, const void **bytes) {
    *bytes = t->out;
    t->lent = t->out_len;
    return t->out_len;
}

void hp_tls_output_sent(hp_tls *t, size_t n) {
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

size_t hp_tls_output_pending(const hp_tls *t) { return t->out_len; }

// Set only by a close_notify. A bare FIN reaches OpenSSL as a BIO read of 0 whose BIO_eof is
// false (bio_ctrl answers 0 to BIO_CTRL_EOF), so it fails the read with SSL_ERROR_SYSCALL, which
// map_result reads as a close; OpenSSL neither sets this flag for it nor raises its own
// unexpected-EOF error.
int hp_tls_close_notify_received(const hp_tls *t) { return (SSL_get_shutdown(t->ssl) & SSL_RECEIVED_SHUTDOWN) != 0; }

int hp_tls_input_lent(const hp_tls *t) { return t->in != NULL; }

int hp_tls_shutdown(hp_tls *t) {
    ERR_clear_error();
    int rc = SSL_shutdown(t->ssl);  // 0: our close_notify is written out; we do not wait for the peer's
    return rc >= 0 ? 0 : map_result(t, rc);
}

void hp_tls_free(hp_tls *t) {
    if (!t) return;
    SSL_free(t->ssl);
    free(t->out);
    free(t->retired);
    free(t);
    atomic_fetch_sub(&live_ssl_objects, 1);
}

size_t hp_tls_alpn(const hp_tls *t, const unsigned char **name) {
    unsigned len = 0;
    SSL_get0_alpn_selected(t->ssl, name, &len);
    return len;
}

long hp_tls_live_objects(void) { return atomic_load(&live_ssl_objects); }

int hp_tls_error_string(hp_tls *t, int code, char *buf, size_t len) {
    if (!buf || len == 0) return 0;
    buf[0] = 0;
    long verify = t ? SSL_get_verify_result(t->ssl) : X509_V_OK;
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
