// HTTP/2 client sessions over nghttp2, sans I/O: received bytes are fed in, bytes to send are
// taken out, and what the frames mean is reported through the caller's callbacks.
#include "CShims.h"

#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long live_sessions;

_Static_assert(HP_H2_ERR_FLOODED == NGHTTP2_ERR_FLOODED, "flood code");
_Static_assert(HP_H2_ERR_NOMEM == NGHTTP2_ERR_NOMEM, "out-of-memory code");

// A request body being sent: nghttp2 pulls it through `read_body`. A streamed one is handed over
// in pieces (hp_h2_body_append): bytes[offset..<len] wait to be framed, and until its end came
// (`open` 0) its stream's DATA is deferred whenever they are all framed. Bodies are on a list so
// hp_h2_free releases those whose stream never closed, and so a body is found by its stream
// before nghttp2 made the stream (it does so only once the HEADERS frame goes out).
typedef struct body {
    struct body *prev, *next;
    int32_t stream;
    uint8_t *bytes;
    size_t len, offset, cap;
    int open;
} body;

struct hp_h2 {
    nghttp2_session *session;
    hp_h2_callbacks callbacks;
    void *user;
    body *bodies;
    // What hp_h2_output gathered: the frames nghttp2 has to send, joined so the caller encrypts
    // them as one write (one TLS record for many small frames).
    uint8_t *out;
    size_t out_cap;
};

static void unlink_body(hp_h2 *h2, body *b) {
    if (b->prev) b->prev->next = b->next; else h2->bodies = b->next;
    if (b->next) b->next->prev = b->prev;
    free(b->bytes);
    free(b);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
    (void)session; (void)flags;
    hp_h2 *h2 = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;  // PUSH_PROMISE: push is off
    int rc = h2->callbacks.on_header(h2->user, frame->hd.stream_id, name, namelen, value, valuelen);
    return rc ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;  // resets the stream
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    hp_h2 *h2 = user_data;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        h2->callbacks.on_headers_end(h2->user, frame->hd.stream_id);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) h2->callbacks.on_end_stream(h2->user, frame->hd.stream_id);
        break;
    case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) h2->callbacks.on_end_stream(h2->user, frame->hd.stream_id);
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            h2->callbacks.on_settings(
                h2->user, nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
        }
        break;
    case NGHTTP2_GOAWAY:
        h2->callbacks.on_goaway(h2->user, frame->goaway.last_stream_id, frame->goaway.error_code);
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) h2->callbacks.on_ping_ack(h2->user);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
    (void)flags;
    hp_h2 *h2 = user_data;
    if (h2->callbacks.on_data(h2->user, stream_id, data, len)) {
        // Refused (over a limit): the stream is cancelled; its close reports it.
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
    hp_h2 *h2 = user_data;
    body *b = nghttp2_session_get_stream_user_data(session, stream_id);
    if (b) unlink_body(h2, b);
    h2->callbacks.on_stream_close(h2->user, stream_id, error_code);
    return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user_data) {
    (void)session; (void)stream_id; (void)user_data;
    body *b = source->ptr;
    size_t n = b->len - b->offset < length ? b->len - b->offset : length;
    if (n == 0 && b->open) return NGHTTP2_ERR_DEFERRED;  // hp_h2_body_append resumes it
    if (n > 0) memcpy(buf, b->bytes + b->offset, n);
    b->offset += n;
    if (b->offset == b->len && !b->open) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

hp_h2 *hp_h2_new(const hp_h2_callbacks *callbacks, void *user, const hp_h2_setting *settings, size_t count,
                 uint32_t window_increment, int *error) {
    *error = NGHTTP2_ERR_NOMEM;
    hp_h2 *h2 = calloc(1, sizeof *h2);
    if (!h2) return NULL;
    h2->callbacks = *callbacks;
    h2->user = user;
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        free(h2);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    // Received DATA opens the flow-control windows again only when the caller says it was
    // consumed (hp_h2_consume): what a server can make the session buffer is bounded by them.
    nghttp2_option *option;
    if (nghttp2_option_new(&option) != 0) {
        nghttp2_session_callbacks_del(cbs);
        free(h2);
        return NULL;
    }
    nghttp2_option_set_no_auto_window_update(option, 1);
    int rc = nghttp2_session_client_new2(&h2->session, cbs, h2, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0) {
        *error = rc;
        free(h2);
        return NULL;
    }
    // The connection preface: SETTINGS exactly as given (nghttp2 keeps their order), then the
    // connection window's increment.
    nghttp2_settings_entry entries[HP_H2_MAX_SETTINGS];
    if (count > HP_H2_MAX_SETTINGS) count = HP_H2_MAX_SETTINGS;
    for (size_t i = 0; i < count; i++) {
        entries[i].settings_id = settings[i].id;
        entries[i].value = settings[i].value;
    }
    rc = nghttp2_submit_settings(h2->session, NGHTTP2_FLAG_NONE, entries, count);
    if (rc == 0 && window_increment) {
        rc = nghttp2_submit_window_update(h2->session, NGHTTP2_FLAG_NONE, 0, (int32_t)window_increment);
    }
    if (rc != 0) {
        *error = rc;
        nghttp2_session_del(h2->session);
        free(h2);
        return NULL;
    }
    *error = 0;
    atomic_fetch_add(&live_sessions, 1);
    return h2;
}

int32_t hp_h2_submit_request(hp_h2 *h2, const hp_h2_field *fields, size_t count, const uint8_t *bytes, size_t len,
                             int streamed, int weight, int32_t dependency, int exclusive) {
    nghttp2_nv *nva = malloc((count ? count : 1) * sizeof *nva);
    if (!nva) return NGHTTP2_ERR_NOMEM;
    for (size_t i = 0; i < count; i++) {
        nva[i] = (nghttp2_nv){(uint8_t *)fields[i].name, (uint8_t *)fields[i].value, fields[i].namelen, fields[i].valuelen,
                              NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_priority_spec priority;
    if (weight > 0) nghttp2_priority_spec_init(&priority, dependency, weight, exclusive);
    body *b = NULL;
    nghttp2_data_provider provider;
    if (len > 0 || streamed) {
        b = calloc(1, sizeof *b);
        if (b && len > 0) b->bytes = malloc(len);
        if (!b || (len > 0 && !b->bytes)) {
            free(b);
            free(nva);
            return NGHTTP2_ERR_NOMEM;
        }
        if (len > 0) memcpy(b->bytes, bytes, len);
        b->len = b->cap = len;
        b->open = streamed;
        b->next = h2->bodies;
        if (h2->bodies) h2->bodies->prev = b;
        h2->bodies = b;
        provider.source.ptr = b;
        provider.read_callback = read_body;
    }
    int32_t stream = nghttp2_submit_request(h2->session, weight > 0 ? &priority : NULL, nva, count, b ? &provider : NULL, b);
    free(nva);  // nghttp2 copied the fields
    if (stream < 0 && b) unlink_body(h2, b);
    if (stream > 0 && b) b->stream = stream;
    return stream;
}

static body *streamed_body(hp_h2 *h2, int32_t stream) {
    for (body *b = h2->bodies; b; b = b->next) {
        if (b->stream == stream) return b;
    }
    return NULL;
}

int hp_h2_body_append(hp_h2 *h2, int32_t stream, const uint8_t *bytes, size_t len, int end) {
    body *b = streamed_body(h2, stream);
    if (!b || !b->open) return NGHTTP2_ERR_INVALID_ARGUMENT;
    if (len > 0) {
        // What is framed already goes once it is at least as much as what waits: the waiting
        // bytes move to the front at most about once each, however small the windows that let
        // them out.
        size_t waiting = b->len - b->offset;
        if (b->offset > 0 && b->offset >= waiting) {
            memmove(b->bytes, b->bytes + b->offset, waiting);
            b->len = waiting;
            b->offset = 0;
        }
        if (b->len + len > b->cap) {
            size_t cap = b->cap * 2 > b->len + len ? b->cap * 2 : b->len + len;
            uint8_t *grown = realloc(b->bytes, cap);
            if (!grown) return NGHTTP2_ERR_NOMEM;
            b->bytes = grown;
            b->cap = cap;
        }
        memcpy(b->bytes + b->len, bytes, len);
        b->len += len;
    }
    if (end) b->open = 0;
    int rc = nghttp2_session_resume_data(h2->session, stream);
    return rc == NGHTTP2_ERR_INVALID_ARGUMENT ? 0 : rc;  // not deferred: read_body runs anyway
}

size_t hp_h2_body_waiting(hp_h2 *h2, int32_t stream) {
    body *b = streamed_body(h2, stream);
    return b ? b->len - b->offset : 0;
}

int hp_h2_receive(hp_h2 *h2, const uint8_t *bytes, size_t len) {
    ssize_t rc = nghttp2_session_mem_recv(h2->session, bytes, len);
    return rc < 0 ? (int)rc : 0;
}

long hp_h2_output(hp_h2 *h2, const uint8_t **bytes) {
    enum { gather_limit = 16384, kept_capacity = 4096 };
    if (h2->out_cap > kept_capacity) {  // a large flight (a body) is not kept for an idle connection
        free(h2->out);
        h2->out = NULL;
        h2->out_cap = 0;
    }
    size_t len = 0;
    while (len < gather_limit) {
        const uint8_t *chunk;
        ssize_t n = nghttp2_session_mem_send(h2->session, &chunk);
        if (n < 0) return (long)n;
        if (n == 0) break;
        if (len + (size_t)n > h2->out_cap) {
            size_t cap = h2->out_cap ? h2->out_cap * 2 : 512;
            while (cap < len + (size_t)n) cap *= 2;
            uint8_t *grown = realloc(h2->out, cap);
            if (!grown) return NGHTTP2_ERR_NOMEM;
            h2->out = grown;
            h2->out_cap = cap;
        }
        memcpy(h2->out + len, chunk, (size_t)n);  // the chunk is nghttp2's until its next call
        len += (size_t)n;
    }
    *bytes = h2->out;
    return (long)len;
}

int hp_h2_consume(hp_h2 *h2, int32_t stream, size_t len) {
    return stream > 0 ? nghttp2_session_consume_stream(h2->session, stream, len)
                      : nghttp2_session_consume_connection(h2->session, len);
}

int hp_h2_reset_stream(hp_h2 *h2, int32_t stream, uint32_t error_code) {
    return nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, stream, error_code);
}

long hp_h2_stream_receive_window(hp_h2 *h2, int32_t stream) {
    if (nghttp2_session_get_stream_remote_close(h2->session, stream) != 0) return 0;  // ended, or unknown (-1)
    int32_t window = nghttp2_session_get_stream_local_window_size(h2->session, stream);
    int32_t connection = nghttp2_session_get_local_window_size(h2->session);
    if (connection < window) window = connection;
    return window > 0 ? window : 0;
}

int hp_h2_ping(hp_h2 *h2) { return nghttp2_submit_ping(h2->session, NGHTTP2_FLAG_NONE, NULL); }

int hp_h2_goaway(hp_h2 *h2) { return nghttp2_session_terminate_session(h2->session, NGHTTP2_NO_ERROR); }

int hp_h2_is_open(hp_h2 *h2) {
    return nghttp2_session_want_read(h2->session) || nghttp2_session_want_write(h2->session);
}

void hp_h2_free(hp_h2 *h2) {
    if (!h2) return;
    nghttp2_session_del(h2->session);
    while (h2->bodies) unlink_body(h2, h2->bodies);
    free(h2->out);
    free(h2);
    atomic_fetch_sub(&live_sessions, 1);
}

const char *hp_h2_error_string(int code) { return nghttp2_strerror(code); }

const char *hp_h2_error_code_name(uint32_t error_code) { return nghttp2_http2_strerror(error_code); }

long hp_h2_live_sessions(void) { return atomic_load(&live_sessions); }
