// SHA-256 with OpenSSL's libcrypto, incrementally: what checks a body against the digest of what
// a server sent (the tests' origin names it), however large the body.
#include "CShims.h"

#include <openssl/evp.h>

hp_sha256 *hp_sha256_new(void) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return (hp_sha256 *)ctx;
}

void hp_sha256_update(hp_sha256 *digest, const void *bytes, size_t count) {
    EVP_DigestUpdate((EVP_MD_CTX *)digest, bytes, count);
}

void hp_sha256_final(hp_sha256 *digest, uint8_t out[HP_SHA256_BYTES]) {
    unsigned int n = 0;
    EVP_DigestFinal_ex((EVP_MD_CTX *)digest, out, &n);
    EVP_MD_CTX_free((EVP_MD_CTX *)digest);
}
