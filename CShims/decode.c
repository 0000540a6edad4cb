// Incremental decoders of HTTP content codings (RFC 9110 8.4.1): gzip and deflate with zlib,
// br with the brotli decoder, zstd with libzstd. Each call takes what input it can and writes
// what output fits; nothing here bounds sizes or ratios (the caller does, between calls).
#include "CShims.h"

#include <brotli/decode.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

// zlib's window bits: 15 (32 KiB) with a zlib header, +16 for a gzip header, negative for raw deflate.
#define ZLIB_WINDOW_BITS 15
#define GZIP_HEADER_BITS 16
// A zlib header's first two bytes: method 8 (deflate) in the low nibble, and a multiple of 31.
#define ZLIB_METHOD_DEFLATE 8
#define ZLIB_HEADER_CHECK 31
// The largest zstd window taken: 8 MiB, as RFC 9659 has HTTP decoders limit it.
#define ZSTD_WINDOW_LOG_MAX 23

struct hp_decoder {
    int coding;
    // deflate: whether the stream's first bytes settled its form (zlib-wrapped or raw), and
    // those bytes while fewer than two have come.
    int started;
    uint8_t first[2];
    size_t first_len;
    // The current stream (gzip: member) ended and no byte of another has come.
    int at_end;
    const char *error;
    z_stream zlib;
    int zlib_ready;
    BrotliDecoderState *brotli;
    ZSTD_DCtx *zstd;
};

hp_decoder *hp_decoder_new(int coding) {
    hp_decoder *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->coding = coding;
    switch (coding) {
    case HP_CODING_GZIP:
        if (inflateInit2(&d->zlib, ZLIB_WINDOW_BITS + GZIP_HEADER_BITS) != Z_OK) goto fail;
        d->zlib_ready = 1;
        d->started = 1;
        break;
    case HP_CODING_DEFLATE:
        break;  // initialised once its first two bytes show its form
    case HP_CODING_BR:
        if (!(d->brotli = BrotliDecoderCreateInstance(NULL, NULL, NULL))) goto fail;
        break;
    case HP_CODING_ZSTD:
        if (!(d->zstd = ZSTD_createDCtx())) goto fail;
        if (ZSTD_isError(ZSTD_DCtx_setParameter(d->zstd, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX))) {
            ZSTD_freeDCtx(d->zstd);
            goto fail;
        }
        break;
    default:
        goto fail;
    }
    return d;
fail:
    free(d);
    return NULL;
}

void hp_decoder_free(hp_decoder *d) {
    if (!d) return;
    if (d->zlib_ready) inflateEnd(&d->zlib);
    if (d->brotli) BrotliDecoderDestroyInstance(d->brotli);
    if (d->zstd) ZSTD_freeDCtx(d->zstd);
    free(d);
}

const char *hp_decoder_error(const hp_decoder *d) { return d->error ? d->error : "no error"; }

int hp_decoder_at_end(const hp_decoder *d) { return d->at_end; }

static int fail(hp_decoder *d, const char *why) {
    d->error = why;
    return HP_DECODE_ERROR;
}

// HTTP's "deflate" is zlib-wrapped (RFC 9110 8.4.1.2), but servers also send raw deflate, which
// browsers accept: the first two bytes tell which. They are kept until both came, then inflated
// first; two bytes of either form yield at most one back-reference's output, well within `out`.
static int start_deflate(hp_decoder *d, const uint8_t *in, size_t in_len, size_t *consumed, uint8_t *out,
                         size_t out_cap, size_t *produced) {
    while (d->first_len < sizeof d->first && *consumed < in_len) d->first[d->first_len++] = in[(*consumed)++];
    if (d->first_len < sizeof d->first) return 0;
    unsigned header = (unsigned)d->first[0] << 8 | d->first[1];
    int zlib_wrapped = (d->first[0] & 0x0f) == ZLIB_METHOD_DEFLATE && header % ZLIB_HEADER_CHECK == 0;
    if (inflateInit2(&d->zlib, zlib_wrapped ? ZLIB_WINDOW_BITS : -ZLIB_WINDOW_BITS) != Z_OK) return fail(d, "out of memory");
    d->zlib_ready = 1;
    d->started = 1;
    d->zlib.next_in = d->first;
    d->zlib.avail_in = sizeof d->first;
    d->zlib.next_out = out;
    d->zlib.avail_out = (uInt)(out_cap > UINT_MAX ? UINT_MAX : out_cap);
    int rc = inflate(&d->zlib, Z_NO_FLUSH);
    *produced = (size_t)(d->zlib.next_out - out);
    if (rc == Z_STREAM_END) d->at_end = 1;
    else if (rc != Z_OK && rc != Z_BUF_ERROR) return fail(d, d->zlib.msg ? d->zlib.msg : "invalid compressed data");
    return d->zlib.avail_in == 0 ? 0 : fail(d, "no room for the stream's first output");
}

static int run_zlib(hp_decoder *d, const uint8_t *in, size_t in_len, size_t *consumed, uint8_t *out, size_t out_cap,
                    size_t *produced) {
    if (!d->started) {
        // Its first bytes, then what follows them in this call.
        size_t head_consumed = 0, head_produced = 0;
        if (start_deflate(d, in, in_len, &head_consumed, out, out_cap, &head_produced) < 0) return HP_DECODE_ERROR;
        if (!d->started || head_produced > 0 || head_consumed == in_len) {
            *consumed = head_consumed;
            *produced = head_produced;
            return HP_DECODE_OK;
        }
        in += head_consumed;
        in_len -= head_consumed;
        size_t rest_consumed = 0;
        int rc = run_zlib(d, in, in_len, &rest_consumed, out, out_cap, produced);
        *consumed = head_consumed + rest_consumed;
        return rc;
    }
    if (d->at_end) {
        if (in_len == 0) return HP_DECODE_OK;  // asked for output the stream's end already gave
        // gzip members may follow one another (RFC 1952 2.2); other streams end once.
        if (d->coding != HP_CODING_GZIP) return fail(d, "data after the end of the stream");
        if (inflateReset(&d->zlib) != Z_OK) return fail(d, "inflateReset failed");
        d->at_end = 0;
    }
    d->zlib.next_in = (Bytef *)in;
    d->zlib.avail_in = (uInt)(in_len > UINT_MAX ? UINT_MAX : in_len);
    d->zlib.next_out = out;
    d->zlib.avail_out = (uInt)(out_cap > UINT_MAX ? UINT_MAX : out_cap);
    int rc = inflate(&d->zlib, Z_NO_FLUSH);
    *consumed = (size_t)(d->zlib.next_in - in);
    *produced = (size_t)(d->zlib.next_out - out);
    switch (rc) {
    case Z_STREAM_END:
        d->at_end = 1;
        return HP_DECODE_OK;
    case Z_OK:
        return HP_DECODE_OK;
    case Z_BUF_ERROR:  // no progress possible: input or output ran out, which the caller sees
        return HP_DECODE_OK;
    case Z_MEM_ERROR:
        return fail(d, "out of memory");
    default:
        return fail(d, d->zlib.msg ? d->zlib.msg : "invalid compressed data");
    }
}

static int run_brotli(hp_decoder *d, const uint8_t *in, size_t in_len, size_t *consumed, uint8_t *out, size_t out_cap,
                      size_t *produced) {
    if (d->at_end) return in_len ? fail(d, "data after the end of the stream") : HP_DECODE_OK;
    size_t avail_in = in_len, avail_out = out_cap;
    const uint8_t *next_in = in;
    uint8_t *next_out = out;
    BrotliDecoderResult rc = BrotliDecoderDecompressStream(d->brotli, &avail_in, &next_in, &avail_out, &next_out, NULL);
    *consumed = in_len - avail_in;
    *produced = out_cap - avail_out;
    switch (rc) {
    case BROTLI_DECODER_RESULT_SUCCESS:
        d->at_end = 1;
        return avail_in ? fail(d, "data after the end of the stream") : HP_DECODE_OK;
    case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
    case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
        return HP_DECODE_OK;
    default:
        return fail(d, BrotliDecoderErrorString(BrotliDecoderGetErrorCode(d->brotli)));
    }
}

static int run_zstd(hp_decoder *d, const uint8_t *in, size_t in_len, size_t *consumed, uint8_t *out, size_t out_cap,
                    size_t *produced) {
    ZSTD_inBuffer input = {in, in_len, 0};
    ZSTD_outBuffer output = {out, out_cap, 0};
    size_t rc = ZSTD_decompressStream(d->zstd, &output, &input);
    *consumed = input.pos;
    *produced = output.pos;
    if (ZSTD_isError(rc)) return fail(d, ZSTD_getErrorName(rc));
    // 0: a frame ended, and another may follow (RFC 8878 3.1); otherwise the frame goes on.
    if (rc == 0) d->at_end = 1;
    else if (input.pos > 0 || output.pos > 0) d->at_end = 0;
    return HP_DECODE_OK;
}

int hp_decoder_run(hp_decoder *d, const uint8_t *in, size_t in_len, size_t *consumed, uint8_t *out, size_t out_cap,
                   size_t *produced) {
    *consumed = 0;
    *produced = 0;
    if (d->error) return HP_DECODE_ERROR;
    switch (d->coding) {
    case HP_CODING_GZIP:
    case HP_CODING_DEFLATE: return run_zlib(d, in, in_len, consumed, out, out_cap, produced);
    case HP_CODING_BR: return run_brotli(d, in, in_len, consumed, out, out_cap, produced);
    default: return run_zstd(d, in, in_len, consumed, out, out_cap, produced);
    }
}
