// c-ares driven by the caller's event loop: c-ares says which sockets to watch (socket
// callback) and when to wake it (hp_dns_timeout_ns); the loop calls hp_dns_process on
// readiness and at that time. Answers come back as IP literals.
#include "CShims.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct hp_dns {
    ares_channel channel;
    hp_dns_socket_cb on_socket;
    hp_dns_answer_cb on_answer;
    void *context;
};

// One lookup in flight: where its answer goes.
typedef struct {
    hp_dns *dns;
    uint64_t id;
} lookup;

static void socket_state(void *data, ares_socket_t fd, int readable, int writable) {
    hp_dns *dns = data;
    dns->on_socket(dns->context, fd, readable, writable);
}

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status;

// ares_library_init is not thread-safe: once per process, whichever pool comes first.
static void init_library(void) { library_status = ares_library_init(ARES_LIB_INIT_ALL); }

hp_dns *hp_dns_create(const char *servers, int timeout_ms, int tries, hp_dns_socket_cb on_socket,
                      hp_dns_answer_cb on_answer, void *context, char *err, size_t errlen) {
    pthread_once(&library_once, init_library);
    if (library_status != ARES_SUCCESS) {
        snprintf(err, errlen, "ares_library_init: %s", ares_strerror(library_status));
        return NULL;
    }
    hp_dns *dns = calloc(1, sizeof *dns);
    if (!dns) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    dns->on_socket = on_socket;
    dns->on_answer = on_answer;
    dns->context = context;
    struct ares_options options;
    memset(&options, 0, sizeof options);
    options.sock_state_cb = socket_state;
    options.sock_state_cb_data = dns;
    options.timeout = timeout_ms;
    options.tries = tries;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    int rc = ares_init_options(&dns->channel, &options, mask);
    if (rc == ARES_SUCCESS && servers) rc = ares_set_servers_ports_csv(dns->channel, servers);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "%s", ares_strerror(rc));
        if (dns->channel) ares_destroy(dns->channel);
        free(dns);
        return NULL;
    }
    return dns;
}

void hp_dns_destroy(hp_dns *dns) {
    ares_destroy(dns->channel);  // answers every lookup still in flight with ARES_EDESTRUCTION
    free(dns);
}

static void answered(void *arg, int status, int timeouts, struct ares_addrinfo *result) {
    (void)timeouts;
    lookup *l = arg;
    // The addresses as NUL-separated literals, in the resolver's order.
    char *text = NULL;
    size_t used = 0;
    int count = 0;
    if (status == ARES_SUCCESS && result) {
        size_t size = 0;
        for (struct ares_addrinfo_node *n = result->nodes; n; n = n->ai_next) size += INET6_ADDRSTRLEN;
        text = malloc(size + 1);
        for (struct ares_addrinfo_node *n = result->nodes; text && n; n = n->ai_next) {
            const void *address = n->ai_family == AF_INET
                ? (const void *)&((struct sockaddr_in *)n->ai_addr)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)n->ai_addr)->sin6_addr;
            if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
            if (!inet_ntop(n->ai_family, address, text + used, INET6_ADDRSTRLEN)) continue;
            used += strlen(text + used) + 1;
            count++;
        }
        if (!text) status = ARES_ENOMEM;
    }
    if (result) ares_freeaddrinfo(result);
    l->dns->on_answer(l->dns->context, l->id, status, text, count);
    free(text);
    free(l);
}

int hp_dns_lookup(hp_dns *dns, const char *name, uint64_t id) {
    lookup *l = malloc(sizeof *l);
    if (!l) return HP_DNS_ENOMEM;
    l->dns = dns;
    l->id = id;
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_NOSORT;  // the order the server gave
    ares_getaddrinfo(dns->channel, name, NULL, &hints, answered, l);
    return 0;
}

void hp_dns_process(hp_dns *dns, int read_fd, int write_fd) {
    ares_process_fd(dns->channel, read_fd < 0 ? ARES_SOCKET_BAD : read_fd, write_fd < 0 ? ARES_SOCKET_BAD : write_fd);
}

int64_t hp_dns_timeout_ns(hp_dns *dns) {
    struct timeval tv;
    if (!ares_timeout(dns->channel, NULL, &tv)) return -1;
    return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

const char *hp_dns_error_string(int status) { return ares_strerror(status); }

int hp_dns_status_not_found(int status) { return status == ARES_ENOTFOUND || status == ARES_ENODATA; }
