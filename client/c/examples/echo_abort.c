/*
 * echo_abort.c - a small lingerd client in C: one echo, then an abortive
 * close seen from both ends.
 *
 * It listens through ring 0 (core 0, 198.18.0.1), connects to itself
 * through ring 1 (core 1), echoes a message, hard-closes one side with
 * SO_LINGER {1, 0} + closesocket as Winsock does, checks that the other
 * side's next receive fails with ECONNRESET, aborts a second connection
 * with ld_abort, checks a few error paths, tears a third pair down with
 * ld_close_matching and aborts the listener; an IPv6 peer reaches the core
 * and is refused with ENETUNREACH (the test daemon has no IPv6 address).
 * It touches nothing but the lingerd API. Exit status 0 means every step
 * behaved.
 *
 * usage: echo_abort SOCKET [PORT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lingerd.h"

#define CHECK(call)                                                          \
    do {                                                                     \
        if ((call) < 0) {                                                    \
            fprintf(stderr, "echo_abort:%d: %s failed: %s\n", __LINE__,      \
                    #call, ld_strerror(ld_last_error()));                    \
            return 1;                                                        \
        }                                                                    \
    } while (0)

#define EXPECT(cond)                                                         \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "echo_abort:%d: expected %s (last error %s)\n",  \
                    __LINE__, #cond, ld_strerror(ld_last_error()));          \
            return 1;                                                        \
        }                                                                    \
    } while (0)

/* Receives exactly len bytes (bounded by the 2 s timeout per call). */
static int recv_all(ld_client *c, ld_handle h, char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        int64_t n = ld_recv(c, h, buf + got, len - got, 2000);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SOCKET [PORT]\n", argv[0]);
        return 2;
    }
    uint16_t port = argc > 2 ? (uint16_t)atoi(argv[2]) : 7;
    struct ld_peer server_addr = {.family = LD_AF_INET, .port = port, .addr = {198, 18, 0, 1}};
    if (ld_abi_version() != LD_ABI_VERSION) {
        fprintf(stderr, "echo_abort: liblingerd speaks ABI %u, lingerd.h %d\n",
                ld_abi_version(), LD_ABI_VERSION);
        return 1;
    }

    ld_client *c = ld_attach(argv[1]);
    if (c == NULL) {
        fprintf(stderr, "echo_abort: attach: %s\n", ld_strerror(ld_last_error()));
        return 1;
    }

    ld_handle listener = LD_INVALID_HANDLE, client = LD_INVALID_HANDLE, server = LD_INVALID_HANDLE;
    struct ld_peer peer;
    /* The first handles of a fresh daemon: never 0, the invalid handle. */
    CHECK(ld_listen_on(c, 0, port, 16, &listener));
    EXPECT(listener != LD_INVALID_HANDLE);
    CHECK(ld_connect_on(c, 1, &server_addr, &client));
    EXPECT(client != LD_INVALID_HANDLE);
    CHECK(ld_accept(c, listener, 5000, &server, &peer));
    EXPECT(server != LD_INVALID_HANDLE);
    EXPECT(peer.family == LD_AF_INET && peer.addr[3] == 2 && peer.addr[4] == 0);
    EXPECT(ld_abort(c, LD_INVALID_HANDLE) == -1 && ld_last_error() == LD_ENOTSOCK);

    /* Echo: client -> server -> client. */
    const char msg[] = "hello through shared memory";
    char buf[64];
    EXPECT(ld_send(c, client, msg, sizeof msg) == (int64_t)sizeof msg);
    CHECK(recv_all(c, server, buf, sizeof msg));
    EXPECT(ld_send(c, server, buf, sizeof msg) == (int64_t)sizeof msg);
    memset(buf, 0, sizeof buf);
    CHECK(recv_all(c, client, buf, sizeof msg));
    EXPECT(memcmp(buf, msg, sizeof msg) == 0);

    /* Abortive close, Winsock style: SO_LINGER {1, 0} then closesocket. */
    struct ld_linger hard = {1, 0}, got;
    CHECK(ld_setlinger(c, server, &hard));
    CHECK(ld_getlinger(c, server, &got));
    EXPECT(got.l_onoff == 1 && got.l_linger == 0);
    CHECK(ld_closesocket(c, server));
    EXPECT(ld_last_outcome() == LD_OUTCOME_ABORTED);
    EXPECT(ld_recv(c, client, buf, sizeof buf, 5000) == -1);
    EXPECT(ld_last_error() == LD_ECONNRESET);
    CHECK(ld_closesocket(c, client));
    EXPECT(ld_last_outcome() == LD_OUTCOME_RESET_BY_PEER);

    /* ld_abort on a second connection, then the handle is dead. */
    ld_handle client2, server2;
    CHECK(ld_connect_on(c, 1, &server_addr, &client2));
    CHECK(ld_accept(c, listener, 5000, &server2, NULL));
    CHECK(ld_abort(c, client2));
    EXPECT(ld_last_outcome() == LD_OUTCOME_ABORTED);
    EXPECT(ld_recv(c, server2, buf, sizeof buf, 5000) == -1);
    EXPECT(ld_last_error() == LD_ECONNRESET);
    EXPECT(ld_abort(c, client2) == -1 && ld_last_error() == LD_ENOTSOCK);

    /* Error paths: bad how, NULL pointers, nothing waiting. */
    EXPECT(ld_shutdown(c, server2, 7) == -1 && ld_last_error() == LD_EINVAL);
    EXPECT(ld_listen(c, 1, 1, NULL) == -1 && ld_last_error() == LD_EINVAL);
    EXPECT(ld_listen(NULL, 1, 1, &listener) == -1 && ld_last_error() == LD_EINVAL);
    EXPECT(ld_accept(c, listener, 0, &server, NULL) == -1 &&
           ld_last_error() == LD_EWOULDBLOCK);
    struct ld_peer bad = server_addr;
    bad.family = 10; /* the OS's AF_INET6, not LD_AF_INET6 */
    EXPECT(ld_connect(c, &bad, &client) == -1 && ld_last_error() == LD_EINVAL);
    /* An IPv6 peer travels to the core; this daemon has no IPv6 address
     * and no IPv6 gateway, so there is no route to it. */
    struct ld_peer v6 = {.family = LD_AF_INET6, .port = port,
                         .addr = {0x20, 0x01, 0x0d, 0xb8, [15] = 1}};
    EXPECT(ld_connect_on(c, 1, &v6, &client) == -1 && ld_last_error() == LD_ENETUNREACH);

    CHECK(ld_closesocket(c, server2));
    EXPECT(ld_last_outcome() == LD_OUTCOME_RESET_BY_PEER);

    /* A live pair goes in one bulk call (listeners are not matched), then
     * the listener is aborted on its own. */
    ld_handle client3, server3;
    CHECK(ld_connect_on(c, 1, &server_addr, &client3));
    CHECK(ld_accept(c, listener, 5000, &server3, NULL));
    int64_t closed = ld_close_matching(c, NULL, LD_CLOSE_ABORT, 0, 0);
    if (closed != 2) {
        fprintf(stderr, "echo_abort: close_matching closed %lld, expected 2\n",
                (long long)closed);
        return 1;
    }
    CHECK(ld_abort(c, listener));
    EXPECT(ld_abort(c, listener) == -1 && ld_last_error() == LD_ENOTSOCK);

    ld_detach(c);
    printf("echo_abort: ok\n");
    return 0;
}
