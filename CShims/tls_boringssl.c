// The BoringSSL engine: browser ClientHellos as Chrome and Safari build them (BoringSSL is
// Chrome's own TLS library): GREASE, extension permutation, ALPS, ECH GREASE, certificate
// compression, post-quantum key shares. BoringSSL comes from swift-nio-ssl's CNIOBoringSSL, whose
// symbols all carry its prefix, so it lives beside OpenSSL in one process.
#include <CNIOBoringSSL.h>
#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include "tls_library.h"

// ---------------------------------------------------------------- offered code points
// Browsers offer what stock BoringSSL will not put in a ClientHello: Safari lists the ECDHE 3DES
// suites 0xc008 and 0xc012 (BoringSSL dropped them), 0x0805 twice (BoringSSL refuses a repeat),
// and Safari 18 pads. Such a code point is offered through a stand-in: BoringSSL builds the
// ClientHello with a code point it has in that place (a PSK suite, a signature algorithm the
// list lacks, the server_padding extension), and the message callback, which BoringSSL calls
// after queueing the message and before hashing it into the transcript, writes the wanted code
// point over the stand-in. The transcript so holds what the server receives once the queued
// bytes are rewritten the same way on their way out (hp_tls_rewrite_output); a PSK binder, which
// BoringSSL computed over the stand-ins, is computed again. A server never sees a stand-in, and
// picking what was offered this way fails the handshake (BoringSSL did not offer it).
// This leans on that order inside BoringSSL, of the pinned version (FingerprintTests check it).
// Real ECH would hash and seal a ClientHelloInner this does not see; HotPool sends ECH GREASE only,
// whose outer ClientHello is the one sent and hashed.

// Stand-ins for cipher suites: BoringSSL's PSK suites, which it sends only when a PSK callback
// is set, and which no browser offers.
static const uint16_t cipher_stand_ins[] = {0x008c, 0x008d, 0xc035, 0xc036, 0xccac};
// Stand-ins for signature algorithms: the ones BoringSSL verifies, least used first; each is
// taken only where the spec's list lacks it.
static const uint16_t sigalg_stand_ins[] = {
    0x0807, 0x0603, 0x0203, 0x0904, 0x0905, 0x0906, 0x0601, 0x0806, 0x0501, 0x0805, 0x0401, 0x0804, 0x0503, 0x0403, 0x0201,
};
#define COUNT(array) (sizeof(array) / sizeof *(array))

// What goes on the wire in a stand-in's place.
typedef struct { uint16_t stand_in, code; } substitution;

typedef struct {
    substitution ciphers[COUNT(cipher_stand_ins)];
    size_t cipher_count;
    substitution sigalgs[COUNT(sigalg_stand_ins)];
    size_t sigalg_count;
    int padding;  // server_padding (two zero bytes, as requested) goes out as padding (21)
} offered;

static int offers_any(const offered *o) { return o->cipher_count || o->sigalg_count || o->padding; }

// One connection's rewriting: what it offers, and, until the ServerHello, the messages a binder
// after a HelloRetryRequest covers (RFC 8446 section 4.2.11.2).
typedef struct {
    offered offer;
    unsigned char *first_hello;  // the first ClientHello, rewritten
    size_t first_hello_len;
    unsigned char *retry;  // the HelloRetryRequest
    size_t retry_len;
} hello_rewriter;

static void forget_hellos(hello_rewriter *r) {
    free(r->first_hello);
    free(r->retry);
    r->first_hello = r->retry = NULL;
    r->first_hello_len = r->retry_len = 0;
}

static void free_rewriter(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int index, long argl, void *argp) {
    (void)parent; (void)ad; (void)index; (void)argl; (void)argp;
    hello_rewriter *r = ptr;
    if (!r) return;
    forget_hellos(r);
    free(r);
}

static int rewriter_index = -1;
static pthread_once_t rewriter_index_once = PTHREAD_ONCE_INIT;

static void make_rewriter_index(void) { rewriter_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_rewriter); }

// Picks a stand-in for `code` from `pool`: one neither in `list` nor taken yet; 0 when none is left.
static uint16_t stand_in(uint16_t code, const uint16_t *pool, size_t pool_count, const uint16_t *list, size_t count,
                         substitution *taken, size_t *taken_count) {
    for (size_t i = 0; i < pool_count; i++) {
        int used = 0;
        for (size_t j = 0; j < count && !used; j++) used = list[j] == pool[i];
        for (size_t j = 0; j < *taken_count && !used; j++) used = taken[j].stand_in == pool[i];
        if (!used) {
            taken[*taken_count].stand_in = pool[i];
            taken[(*taken_count)++].code = code;
            return pool[i];
        }
    }
    return 0;
}

// Writes the code points of a list of u16 (inside `msg`) over their stand-ins.
static void substitute(CBS list, const substitution *subs, size_t count) {
    uint8_t *p = (uint8_t *)CBS_data(&list);  // points into the message being rewritten
    for (size_t at = 0; at + 2 <= CBS_len(&list); at += 2) {
        uint16_t value = (uint16_t)(p[at] << 8 | p[at + 1]);
        for (size_t i = 0; i < count; i++) {
            if (subs[i].stand_in == value) {
                p[at] = (uint8_t)(subs[i].code >> 8);
                p[at + 1] = (uint8_t)subs[i].code;
            }
        }
    }
}

// Rewrites a ClientHello in place; *binders is the offset of the pre_shared_key binders (their
// length prefix), or 0. 0 when the message does not parse.
static int rewrite_hello(uint8_t *msg, size_t len, const offered *o, size_t *binders) {
    CBS cbs, body, ignored, ciphers, extensions;
    uint8_t type;
    CBS_init(&cbs, msg, len);
    if (!CBS_get_u8(&cbs, &type) || !CBS_get_u24_length_prefixed(&cbs, &body) ||
        !CBS_skip(&body, 2 + SSL3_RANDOM_SIZE) || !CBS_get_u8_length_prefixed(&body, &ignored) ||
        !CBS_get_u16_length_prefixed(&body, &ciphers) || !CBS_get_u8_length_prefixed(&body, &ignored) ||
        !CBS_get_u16_length_prefixed(&body, &extensions))
        return 0;
    substitute(ciphers, o->ciphers, o->cipher_count);
    *binders = 0;
    while (CBS_len(&extensions)) {
        uint8_t *at = (uint8_t *)CBS_data(&extensions);
        uint16_t ext_type;
        CBS ext, list;
        if (!CBS_get_u16(&extensions, &ext_type) || !CBS_get_u16_length_prefixed(&extensions, &ext)) return 0;
        if (ext_type == TLSEXT_TYPE_signature_algorithms) {
            if (!CBS_get_u16_length_prefixed(&ext, &list)) return 0;
            substitute(list, o->sigalgs, o->sigalg_count);
        } else if (ext_type == TLSEXT_TYPE_server_padding && o->padding) {
            at[0] = TLSEXT_TYPE_padding >> 8;
            at[1] = TLSEXT_TYPE_padding & 0xff;
            memset((uint8_t *)CBS_data(&ext), 0, CBS_len(&ext));
        } else if (ext_type == TLSEXT_TYPE_pre_shared_key) {
            if (!CBS_get_u16_length_prefixed(&ext, &list)) return 0;  // the identities
            *binders = (size_t)(CBS_data(&ext) - msg);
        }
    }
    return 1;
}

// HKDF-Expand-Label (RFC 8446 section 7.1) into out.
static int expand_label(uint8_t *out, size_t out_len, const EVP_MD *md, const uint8_t *secret, size_t secret_len,
                        const char *label, const uint8_t *context, size_t context_len) {
    static const char prefix[] = "tls13 ";
    uint8_t info[2 + 1 + 255 + 1 + EVP_MAX_MD_SIZE];
    size_t label_len = strlen(label), n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(sizeof prefix - 1 + label_len);
    memcpy(info + n, prefix, sizeof prefix - 1);
    n += sizeof prefix - 1;
    memcpy(info + n, label, label_len);
    n += label_len;
    info[n++] = (uint8_t)context_len;
    if (context_len) memcpy(info + n, context, context_len);
    n += context_len;
    return HKDF_expand(out, out_len, md, secret, secret_len, info, n);
}

// Computes the one PSK binder of a rewritten ClientHello again, over the rewritten bytes (after
// a HelloRetryRequest, over the first ClientHello's hash and the request too). 0 on failure.
static int rebind(SSL *ssl, const hello_rewriter *r, uint8_t *msg, size_t len, size_t binders_at) {
    SSL_SESSION *session = SSL_get_session(ssl);
    if (!session) return 0;
    const EVP_MD *md = SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(session));
    size_t hash_len = EVP_MD_size(md);
    CBS binders, list, binder;
    CBS_init(&binders, msg + binders_at, len - binders_at);
    if (!CBS_get_u16_length_prefixed(&binders, &list) || !CBS_get_u8_length_prefixed(&list, &binder) ||
        CBS_len(&list) || CBS_len(&binders) || CBS_len(&binder) != hash_len)
        return 0;
    uint8_t secret[SSL_MAX_MASTER_KEY_LENGTH], early[EVP_MAX_MD_SIZE], empty_hash[EVP_MAX_MD_SIZE];
    uint8_t binder_key[EVP_MAX_MD_SIZE], finished_key[EVP_MAX_MD_SIZE], context[EVP_MAX_MD_SIZE];
    size_t secret_len = SSL_SESSION_get_master_key(session, secret, sizeof secret), early_len;
    unsigned empty_len, context_len, binder_len;
    if (!HKDF_extract(early, &early_len, md, secret, secret_len, NULL, 0) ||
        !EVP_Digest(NULL, 0, empty_hash, &empty_len, md, NULL) ||
        !expand_label(binder_key, hash_len, md, early, early_len, "res binder", empty_hash, empty_len) ||
        !expand_label(finished_key, hash_len, md, binder_key, hash_len, "finished", NULL, 0))
        return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, md, NULL);
    if (ok && r->retry) {
        // The first ClientHello enters the transcript as a message_hash message.
        uint8_t message_hash[4 + EVP_MAX_MD_SIZE] = {SSL3_MT_MESSAGE_HASH, 0, 0, (uint8_t)hash_len};
        ok = EVP_Digest(r->first_hello, r->first_hello_len, message_hash + 4, NULL, md, NULL) &&
             EVP_DigestUpdate(ctx, message_hash, 4 + hash_len) && EVP_DigestUpdate(ctx, r->retry, r->retry_len);
    }
    ok = ok && EVP_DigestUpdate(ctx, msg, binders_at) && EVP_DigestFinal_ex(ctx, context, &context_len) &&
         HMAC(md, finished_key, hash_len, context, context_len, (uint8_t *)CBS_data(&binder), &binder_len);
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(early, sizeof early);
    OPENSSL_cleanse(binder_key, sizeof binder_key);
    OPENSSL_cleanse(finished_key, sizeof finished_key);
    return ok;
}

// Keeps a copy of a message in *copy; 0 when out of memory.
static int keep_copy(unsigned char **copy, size_t *copy_len, const void *msg, size_t len) {
    free(*copy);
    *copy_len = 0;
    if (!(*copy = malloc(len))) return 0;
    memcpy(*copy, msg, len);
    *copy_len = len;
    return 1;
}

// The message callback: rewrites each ClientHello before the transcript takes it, and keeps a
// HelloRetryRequest for the next binder.
static void on_message(int is_write, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg) {
    (void)version;
    hello_rewriter *r = arg;
    const uint8_t *msg = buf;
    // A HelloRetryRequest is a ServerHello whose random is this fixed value (RFC 8446 section 4.1.3).
    static const uint8_t retry_random[SSL3_RANDOM_SIZE] = {
        0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
        0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
    };
    const size_t random_at = 4 + 2;  // after the message header and legacy_version
    if (content_type != SSL3_RT_HANDSHAKE || len < random_at + SSL3_RANDOM_SIZE) return;
    if (!is_write) {
        if (msg[0] != SSL3_MT_SERVER_HELLO) return;
        // (Out of memory, the next binder is wrong, and the server refuses it.)
        if (memcmp(msg + random_at, retry_random, SSL3_RANDOM_SIZE) == 0) keep_copy(&r->retry, &r->retry_len, msg, len);
        else forget_hellos(r);  // no ClientHello follows
        return;
    }
    if (msg[0] != SSL3_MT_CLIENT_HELLO) return;
    uint8_t *hello = (uint8_t *)buf;  // BoringSSL's own copy of the message, hashed after this returns
    unsigned char *original = malloc(len), *rewritten = malloc(len);
    size_t binders_at = 0;
    if (original) memcpy(original, hello, len);
    int ok = original && rewritten && rewrite_hello(hello, len, &r->offer, &binders_at) &&
             (!binders_at || rebind(ssl, r, hello, len, binders_at)) &&
             (r->first_hello || keep_copy(&r->first_hello, &r->first_hello_len, hello, len));
    // Otherwise zeros go out and into the transcript: a message no server takes. Only when out
    // of memory for both copies can the stand-ins reach a server, in a handshake that then fails.
    if (!ok) memset(hello, 0, len);
    if (original && rewritten) {
        memcpy(rewritten, hello, len);
        hp_tls_rewrite_output(SSL_get_app_data(ssl), original, rewritten, len);
    } else {
        free(original);
        free(rewritten);
    }
}

// A PSK suite stands in for another code point and is never negotiated: no key to offer.
static unsigned no_psk(SSL *ssl, const char *hint, char *identity, unsigned max_identity_len, uint8_t *psk,
                       unsigned max_psk_len) {
    (void)ssl; (void)hint; (void)identity; (void)max_identity_len; (void)psk; (void)max_psk_len;
    return 0;
}

// Rewrites the ClientHellos of `ssl` as `o` says: 0, or HP_TLS_ERROR.
static int offer(SSL *ssl, const offered *o) {
    pthread_once(&rewriter_index_once, make_rewriter_index);
    hello_rewriter *r = calloc(1, sizeof *r);
    if (rewriter_index < 0 || !r || !SSL_set_ex_data(ssl, rewriter_index, r)) {
        free(r);
        return HP_TLS_ERROR;
    }
    r->offer = *o;
    SSL_set_msg_callback(ssl, on_message);
    SSL_set_msg_callback_arg(ssl, r);
    if (o->cipher_count) SSL_set_psk_client_callback(ssl, no_psk);
    if (o->padding) SSL_set_server_padding_request(ssl, 0);
    return 0;
}

// ---------------------------------------------------------------- profiles

// What each connection's SSL is given (BoringSSL sets these per SSL, not per context).
typedef struct {
    offered offer;
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
    return offers_any(&s->offer) ? offer(ssl, &s->offer) : 0;
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

// The cipher list as BoringSSL's names joined by ':', of codes it implements (plan_offer put a
// stand-in in the place of any other); NULL (with the reason in err) when out of memory.
static char *cipher_list(const uint16_t *codes, size_t count, char *err, size_t errlen) {
    size_t cap = 1;
    for (size_t i = 0; i < count; i++) cap += strlen(SSL_CIPHER_get_name(SSL_get_cipher_by_value(codes[i]))) + 1;
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

// The lists BoringSSL is given: `p`'s, with a stand-in (noted in `o`) in the place of each
// cipher suite BoringSSL does not implement and each signature algorithm it does not know or
// that came before. 0, or HP_TLS_ERROR with the reason in err.
static int plan_offer(const hp_boringssl_profile *p, uint16_t *ciphers, uint16_t *sigalgs, offered *o, char *err,
                      size_t errlen) {
    for (size_t i = 0; i < p->tls12_cipher_count; i++) {
        uint16_t code = p->tls12_ciphers[i];
        ciphers[i] = SSL_get_cipher_by_value(code)
            ? code
            : stand_in(code, cipher_stand_ins, COUNT(cipher_stand_ins), p->tls12_ciphers, p->tls12_cipher_count,
                       o->ciphers, &o->cipher_count);
        if (!ciphers[i]) {
            snprintf(err, errlen, "more than %zu TLS 1.2 cipher suites BoringSSL does not implement (0x%04x)",
                     COUNT(cipher_stand_ins), code);
            return HP_TLS_ERROR;
        }
    }
    for (size_t i = 0; i < p->sigalg_count; i++) {
        uint16_t code = p->sigalgs[i];
        int again = 0;
        for (size_t j = 0; j < i && !again; j++) again = p->sigalgs[j] == code;
        sigalgs[i] = SSL_get_signature_algorithm_name(code, 0) && !again
            ? code
            : stand_in(code, sigalg_stand_ins, COUNT(sigalg_stand_ins), p->sigalgs, p->sigalg_count, o->sigalgs,
                       &o->sigalg_count);
        if (!sigalgs[i]) {
            snprintf(err, errlen, "signature algorithm 0x%04x: no stand-in left for it", code);
            return HP_TLS_ERROR;
        }
    }
    o->padding = p->padding;
    return 0;
}

// Applies the context-wide part of a profile, with `ciphers` and `sigalgs` for its lists: 0, or
// HP_TLS_ERROR with the reason in err.
static int apply_profile(SSL_CTX *ctx, const hp_boringssl_profile *p, const uint16_t *ciphers, const uint16_t *sigalgs,
                         char *err, size_t errlen) {
    const char *what = NULL;
    char *names = NULL;
    if (p->tls12_cipher_count && !(names = cipher_list(ciphers, p->tls12_cipher_count, err, errlen))) return HP_TLS_ERROR;
    if (SSL_CTX_set_min_proto_version(ctx, (uint16_t)p->min_version) != 1) what = "min version";
    else if (SSL_CTX_set_max_proto_version(ctx, (uint16_t)p->max_version) != 1) what = "max version";
    else if (names && SSL_CTX_set_strict_cipher_list(ctx, names) != 1) what = "TLS 1.2 cipher suites";
    else if (p->group_count && SSL_CTX_set1_group_ids(ctx, p->groups, p->group_count) != 1) what = "groups";
    else if (p->sigalg_count && SSL_CTX_set_verify_algorithm_prefs(ctx, sigalgs, p->sigalg_count) != 1) what = "signature algorithms";
    else if (p->alpn_len && SSL_CTX_set_alpn_protos(ctx, p->alpn, p->alpn_len) != 0) what = "ALPN";
    free(names);
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
static ssl_settings *copy_settings(const hp_boringssl_profile *p, const offered *o) {
    ssl_settings *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->offer = *o;
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
    offered o = {0};
    uint16_t *ciphers = calloc(profile->tls12_cipher_count + 1, sizeof *ciphers);
    uint16_t *sigalgs = calloc(profile->sigalg_count + 1, sizeof *sigalgs);
    SSL_CTX *ctx = NULL;
    ssl_settings *settings = NULL;
    if (!ciphers || !sigalgs) snprintf(err, errlen, "out of memory");
    else if (plan_offer(profile, ciphers, sigalgs, &o, err, errlen) == 0 && (ctx = client_ctx_new(verify, ca_file, err, errlen)) &&
             apply_profile(ctx, profile, ciphers, sigalgs, err, errlen) == 0 && !(settings = copy_settings(profile, &o)))
        snprintf(err, errlen, "out of memory");
    free(ciphers);
    free(sigalgs);
    if (!settings) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return wrap_ctx(ctx, settings);
}

int hp_boringssl_api_version(void) { return BORINGSSL_API_VERSION; }
