// The BoringSSL engine: browser ClientHellos as Chrome and Safari build them (BoringSSL is
// Chrome's own TLS library): GREASE, extension permutation, ALPS, ECH GREASE, certificate
// compression, post-quantum key shares. BoringSSL comes from swift-nio-ssl's CNIOBoringSSL, whose
// symbols all carry its prefix, so it lives beside OpenSSL in one process.
#include <CNIOBoringSSL.h>
#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include "tls_library.h"

// What each connection's SSL is given (BoringSSL sets these per SSL, not per context).
typedef struct {
    int ech_grease;
    int alps_new_codepoint;
    unsigned char *alps;  // ALPN names with ALPS, wire format
    unsigned alps_len;
    uint16_t *key_shares;
    size_t key_share_count;
} ssl_settings;

static void free_settings(void *settings) {
    ssl_settings *s = settings;
    if (!s) return;
    free(s->alps);
    free(s->key_shares);
    free(s);
}

static int configure_ssl(hp_tls_ctx *ctx, SSL *ssl) {
    const ssl_settings *s = ctx->settings;
    SSL_set_enable_ech_grease(ssl, s->ech_grease);
    SSL_set_alps_use_new_codepoint(ssl, s->alps_new_codepoint);
    for (unsigned at = 0; at < s->alps_len; at += 1 + s->alps[at]) {
        // The ClientHello names the protocols; no settings of its own are sent encrypted.
        if (SSL_add_application_settings(ssl, s->alps + at + 1, s->alps[at], NULL, 0) != 1) return HP_TLS_ERROR;
    }
    if (s->key_share_count && SSL_set1_client_key_shares(ssl, s->key_shares, s->key_share_count) != 1) return HP_TLS_ERROR;
    return 0;
}

// Certificate decompression (RFC 8879) into a buffer of exactly the announced size, which
// BoringSSL bounds by its certificate-list limit before calling.
static int zlib_decompress(SSL *ssl, CRYPTO_BUFFER **out, size_t size, const uint8_t *in, size_t in_len) {
    (void)ssl;
    uint8_t *data;
    CRYPTO_BUFFER *buffer = CRYPTO_BUFFER_alloc(&data, size);
    uLongf n = size;
    if (!buffer || uncompress(data, &n, in, in_len) != Z_OK || n != size) {
        CRYPTO_BUFFER_free(buffer);
        return 0;
    }
    *out = buffer;
    return 1;
}

static int brotli_decompress(SSL *ssl, CRYPTO_BUFFER **out, size_t size, const uint8_t *in, size_t in_len) {
    (void)ssl;
    uint8_t *data;
    CRYPTO_BUFFER *buffer = CRYPTO_BUFFER_alloc(&data, size);
    size_t n = size;
    if (!buffer || BrotliDecoderDecompress(in_len, in, &n, data) != BROTLI_DECODER_RESULT_SUCCESS || n != size) {
        CRYPTO_BUFFER_free(buffer);
        return 0;
    }
    *out = buffer;
    return 1;
}

static int zstd_decompress(SSL *ssl, CRYPTO_BUFFER **out, size_t size, const uint8_t *in, size_t in_len) {
    (void)ssl;
    uint8_t *data;
    CRYPTO_BUFFER *buffer = CRYPTO_BUFFER_alloc(&data, size);
    if (!buffer || ZSTD_decompress(data, size, in, in_len) != size) {
        CRYPTO_BUFFER_free(buffer);
        return 0;
    }
    *out = buffer;
    return 1;
}

// The RFC 8879 algorithm ids (1 zlib, 2 brotli, 3 zstd) and their decompressors.
static ssl_cert_decompression_func_t decompressor(uint16_t algorithm) {
    switch (algorithm) {
    case 1: return zlib_decompress;
    case 2: return brotli_decompress;
    case 3: return zstd_decompress;
    default: return NULL;
    }
}

// The cipher list as BoringSSL's names joined by ':'; NULL (with the reason in err) for a code
// point BoringSSL does not implement.
static char *cipher_list(const uint16_t *codes, size_t count, char *err, size_t errlen) {
    size_t cap = 1;
    for (size_t i = 0; i < count; i++) {
        const SSL_CIPHER *cipher = SSL_get_cipher_by_value(codes[i]);
        if (!cipher) {
            snprintf(err, errlen, "TLS 1.2 cipher suite 0x%04x is not implemented by BoringSSL", codes[i]);
            return NULL;
        }
        cap += strlen(SSL_CIPHER_get_name(cipher)) + 1;
    }
    char *list = calloc(1, cap);
    if (!list) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (i) strcat(list, ":");
        strcat(list, SSL_CIPHER_get_name(SSL_get_cipher_by_value(codes[i])));
    }
    return list;
}

// Applies the context-wide part of a profile: 0, or HP_TLS_ERROR with the reason in err.
static int apply_profile(SSL_CTX *ctx, const hp_boringssl_profile *p, char *err, size_t errlen) {
    const char *what = NULL;
    char *ciphers = NULL;
    if (p->tls12_cipher_count && !(ciphers = cipher_list(p->tls12_ciphers, p->tls12_cipher_count, err, errlen)))
        return HP_TLS_ERROR;
    if (SSL_CTX_set_min_proto_version(ctx, (uint16_t)p->min_version) != 1) what = "min version";
    else if (SSL_CTX_set_max_proto_version(ctx, (uint16_t)p->max_version) != 1) what = "max version";
    else if (ciphers && SSL_CTX_set_strict_cipher_list(ctx, ciphers) != 1) what = "TLS 1.2 cipher suites";
    else if (p->group_count && SSL_CTX_set1_group_ids(ctx, p->groups, p->group_count) != 1) what = "groups";
    else if (p->sigalg_count && SSL_CTX_set_verify_algorithm_prefs(ctx, p->sigalgs, p->sigalg_count) != 1) what = "signature algorithms";
    else if (p->alpn_len && SSL_CTX_set_alpn_protos(ctx, p->alpn, p->alpn_len) != 0) what = "ALPN";
    free(ciphers);
    for (size_t i = 0; !what && i < p->cert_compression_count; i++) {
        ssl_cert_decompression_func_t decompress = decompressor(p->cert_compression[i]);
        if (!decompress || SSL_CTX_add_cert_compression_alg(ctx, p->cert_compression[i], NULL, decompress) != 1)
            what = "certificate compression (1 zlib, 2 brotli, 3 zstd, each once)";
    }
    if (what) {
        fail_reason(what, err, errlen);
        return HP_TLS_ERROR;
    }
    SSL_CTX_set_grease_enabled(ctx, p->grease);
    SSL_CTX_set_permute_extensions(ctx, p->permute_extensions);
    if (p->status_request) SSL_CTX_enable_ocsp_stapling(ctx);
    if (p->signed_certificate_timestamp) SSL_CTX_enable_signed_cert_timestamps(ctx);
    if (!p->session_ticket) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return 0;
}

// The per-connection part of a profile, copied; NULL when out of memory.
static ssl_settings *copy_settings(const hp_boringssl_profile *p) {
    ssl_settings *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ech_grease = p->ech_grease;
    s->alps_new_codepoint = p->alps_new_codepoint;
    if ((p->alps_len && !(s->alps = malloc(p->alps_len))) ||
        (p->key_share_count && !(s->key_shares = calloc(p->key_share_count, sizeof *s->key_shares)))) {
        free_settings(s);
        return NULL;
    }
    if (p->alps_len) memcpy(s->alps, p->alps, p->alps_len);
    s->alps_len = p->alps_len;
    if (p->key_share_count) memcpy(s->key_shares, p->key_shares, p->key_share_count * sizeof *s->key_shares);
    s->key_share_count = p->key_share_count;
    return s;
}

hp_tls_ctx *hp_boringssl_ctx_new(const hp_boringssl_profile *profile, int verify, const char *ca_file, char *err, size_t errlen) {
    // ALPS names must be well formed: each a length byte and that many bytes.
    for (unsigned at = 0; at < profile->alps_len; at += 1 + profile->alps[at]) {
        if (profile->alps[at] == 0 || at + 1 + profile->alps[at] > profile->alps_len) {
            snprintf(err, errlen, "ALPS protocol list is malformed");
            return NULL;
        }
    }
    SSL_CTX *ctx = client_ctx_new(verify, ca_file, err, errlen);
    if (!ctx) return NULL;
    ssl_settings *settings = NULL;
    if (apply_profile(ctx, profile, err, errlen) != 0 || !(settings = copy_settings(profile))) {
        if (!settings && err && errlen && !*err) snprintf(err, errlen, "out of memory");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return wrap_ctx(ctx, settings);
}

int hp_boringssl_api_version(void) { return BORINGSSL_API_VERSION; }
