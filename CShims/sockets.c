// Non-blocking TCP client sockets.
#define _GNU_SOURCE
#include "CShims.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// Fills a sockaddr for an IP literal; returns its length, or 0 if ip is not a literal.
static socklen_t make_addr(const char *ip, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return sizeof *v4;
    }
    if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return sizeof *v6;
    }
    return 0;
}

int hp_ip_family(const char *ip) {
    struct sockaddr_storage ss;
    socklen_t len = make_addr(ip, 0, &ss);
    return len == 0 ? 0 : (ss.ss_family == AF_INET ? 4 : 6);
}

int hp_tcp_connect(const char *ip, int port, const char *local_ip, int *in_progress, int *bind_failed) {
    *bind_failed = 0;
    struct sockaddr_storage remote, local;
    socklen_t rlen = make_addr(ip, port, &remote);
    if (rlen == 0) return -EINVAL;
    int fd = socket(remote.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (local_ip) {
        socklen_t llen = make_addr(local_ip, 0, &local);
        if (llen == 0 || local.ss_family != remote.ss_family) {
            close(fd);
            return -EINVAL;
        }
        if (bind(fd, (struct sockaddr *)&local, llen) < 0) {
            int err = errno;
            close(fd);
            *bind_failed = 1;
            return -err;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *in_progress = 0;
    if (connect(fd, (struct sockaddr *)&remote, rlen) < 0) {
        if (errno != EINPROGRESS) {
            int err = errno;
            close(fd);
            return -err;
        }
        *in_progress = 1;
    }
    return fd;
}

int hp_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
    return err;
}

long hp_recv(int fd, void *buf, size_t len) {
    ssize_t n = recv(fd, buf, len, 0);
    return n < 0 ? -errno : n;
}

long hp_send(int fd, const void *buf, size_t len) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    return n < 0 ? -errno : n;
}

void hp_tcp_ack_now(int fd) {
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}
