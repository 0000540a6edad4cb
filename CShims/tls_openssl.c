// The OpenSSL 3.0 engine: a plain profile through OpenSSL's own knobs, and the extensions it
// does not send itself (GREASE, ECH GREASE) as custom extensions.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls_library.h"

static int configure_ssl(hp_tls_ctx *ctx, SSL *ssl) {
    (void)ctx; (void)ssl;
    return 0;  // the context holds all of an OpenSSL profile
}

static void free_settings(void *settings) { (void)settings; }

// Applies a profile to a context: 0, or HP_TLS_ERROR with the reason in err.
static int apply_profile(SSL_CTX *ctx, const hp_tls_profile *p, char *err, size_t errlen) {
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
        fail_reason(what, err, errlen);
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

hp_tls_ctx *hp_openssl_ctx_new(const hp_tls_profile *profile, int verify, const char *ca_file, char *err, size_t errlen) {
    SSL_CTX *ctx = client_ctx_new(verify, ca_file, err, errlen);
    if (!ctx) return NULL;
    if (apply_profile(ctx, profile, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return wrap_ctx(ctx, NULL);
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

int hp_openssl_ctx_add_extension(hp_tls_ctx *ctx, unsigned type, int payload) {
    unsigned context = SSL_EXT_CLIENT_HELLO | SSL_EXT_TLS1_3_ENCRYPTED_EXTENSIONS;
    int ok = SSL_CTX_add_custom_ext(ctx->ctx, type, context, add_extension, free_extension,
                                    (void *)(intptr_t)payload, ignore_extension, NULL);
    ERR_clear_error();
    return ok == 1 ? 0 : HP_TLS_ERROR;
}

void hp_openssl_ctx_keep_no_sessions(hp_tls_ctx *ctx) {
    SSL_CTX_sess_set_new_cb(ctx->ctx, NULL);
    SSL_CTX_set_session_cache_mode(ctx->ctx, SSL_SESS_CACHE_OFF);
}
