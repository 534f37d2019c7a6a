/*
 * lingerd.h - the C API of liblingerd.so (package lingerd-c).
 *
 * This header declares the C face of the Rust client library and nothing
 * else: every function is one call of lingerd_client::Client (client/c/src/sys.rs).
 * The behaviour is docs/close-semantics.md, with Winsock names and conventions:
 * functions return 0 (or a byte/connection count) on success and -1
 * (SOCKET_ERROR) on failure; ld_last_error() then tells why, per thread,
 * with the stable LD_E* codes below (the ABI's numbers). Successes leave
 * ld_last_error() unchanged.
 *
 * Pointers: NULL for any pointer not marked "may be NULL" fails with
 * LD_EINVAL. A dangling ld_client, or a buffer shorter than its length, is
 * undefined behaviour as with any C API. An ld_client may be shared by
 * threads (it is locked inside), but a blocking call holds the lock while
 * it waits: one ld_client per thread is the fast way.
 *
 * Handles are 64-bit; their top byte names the dataplane core that owns
 * them, and each call goes to that core's ring. ld_listen and ld_connect
 * use ring 0; ld_listen_on and ld_connect_on choose the ring.
 *
 * Blocking calls wait at most the client's call timeout (10 s; a blocking
 * close also waits out the linger time set through this client), then fail
 * with LD_ETIMEDOUT. Link with -llingerd.
 */
#ifndef LINGERD_H
#define LINGERD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. The daemon refuses an attach of another
 * version (LD_EINVAL); ld_abi_version() tells what the loaded library
 * speaks, so a program can check it was linked with what it compiled
 * against. Version 2: peers and filter prefixes are IPv4 or IPv6. */
#define LD_ABI_VERSION 2

/* Address families of ld_peer and ld_filter (not the OS's AF_* values). */
#define LD_AF_INET  4
#define LD_AF_INET6 6

/* Error codes (ld_last_error); stable numbers. */
#define LD_OK                   0
#define LD_ENOTSOCK             1  /* handle unknown, dead or stale */
#define LD_EPERM                2  /* someone else's handle; attach: uid not allowed */
#define LD_EWOULDBLOCK          3  /* non-blocking close would linger; nothing waiting */
#define LD_EINVAL               4  /* bad argument, NULL pointer */
#define LD_ENOTCONN             5
#define LD_ECONNRESET           6  /* the peer reset the connection */
#define LD_ECONNABORTED         7
#define LD_ENETDOWN             8  /* the daemon is gone or unreachable */
#define LD_EINPROGRESS          9
#define LD_OPERATION_ABORTED    10 /* cancelled by a close of its handle */
#define LD_ENOBUFS              11 /* no ring or buffer space; nothing done, retry */
#define LD_ETIMEDOUT            12
#define LD_ECONNREFUSED         13
#define LD_ESHUTDOWN            14
#define LD_EADDRINUSE           15
#define LD_ENETUNREACH          16

/* shutdown's how. */
#define LD_SD_RECEIVE 0
#define LD_SD_SEND    1
#define LD_SD_BOTH    2

/* How a close ended (ld_last_outcome). */
#define LD_OUTCOME_GRACEFUL       1 /* peer acknowledged all data and our FIN */
#define LD_OUTCOME_BACKGROUND     2 /* returned at once; graceful close goes on */
#define LD_OUTCOME_ABORTED_LINGER 3 /* linger deadline expired; RST sent */
#define LD_OUTCOME_ABORTED        4 /* hard close (RST) */
#define LD_OUTCOME_RESET_BY_PEER  5 /* the peer reset first */

/* ld_close_matching modes. LINGER: FIN, and an RST only for what is still
 * unacknowledged when linger_ms expire (SO_LINGER's meaning). DEADLINE:
 * FIN, and an RST at linger_ms for every connection not yet closed both
 * ways (FIN-WAIT-2 included): every matched connection gone by then. */
#define LD_CLOSE_GRACEFUL 0
#define LD_CLOSE_ABORT    1
#define LD_CLOSE_LINGER   2
#define LD_CLOSE_DEADLINE 3

/* ld_filter.flags: which fields are set. */
#define LD_MATCH_LOCAL       1
#define LD_MATCH_REMOTE      2
#define LD_MATCH_LOCAL_PORT  4
#define LD_MATCH_REMOTE_PORT 8

typedef struct ld_client ld_client;
/* A connection or listener. 0 is never a valid handle: no connection or
 * listener is ever given it, so callers may use LD_INVALID_HANDLE (0) as
 * "no handle", and an operation on it fails with LD_ENOTSOCK. */
typedef uint64_t ld_handle;
#define LD_INVALID_HANDLE ((ld_handle)0)

/* Winsock's LINGER. */
struct ld_linger {
    uint16_t l_onoff;  /* non-zero: linger */
    uint16_t l_linger; /* seconds */
};

/* A peer, IPv4 or IPv6. addr is most significant octet first: an IPv4
 * address fills addr[0..4] and the other twelve bytes are zero; an IPv6
 * address fills all 16. A family other than LD_AF_INET / LD_AF_INET6, or
 * an IPv4 address with non-zero bytes after its four, is LD_EINVAL. */
struct ld_peer {
    uint16_t family; /* LD_AF_INET or LD_AF_INET6 */
    uint16_t port;
    uint8_t addr[16];
};

/* Prefixes as ld_peer's addresses; a prefix's family and length are only
 * read when its LD_MATCH_* flag is set. A length beyond the family's bits
 * (32, 128) is LD_EINVAL. */
struct ld_filter {
    uint32_t flags;         /* LD_MATCH_* */
    uint16_t local_family;  /* LD_AF_INET or LD_AF_INET6 */
    uint16_t remote_family; /* LD_AF_INET or LD_AF_INET6 */
    uint8_t local_addr[16];
    uint8_t remote_addr[16];
    uint8_t local_len;      /* 0..32 or 0..128 */
    uint8_t remote_len;     /* 0..32 or 0..128 */
    uint16_t local_port;
    uint16_t remote_port;
    uint16_t states;        /* bit per TCP state, 0 = any */
    uint32_t min_idle_ms;
};

/* The layouts liblingerd was built with (client/c/src/sys.rs checks the
 * same sizes on the Rust side). */
#ifdef __cplusplus
static_assert(sizeof(struct ld_peer) == 20, "struct ld_peer is 20 bytes");
static_assert(sizeof(struct ld_filter) == 52, "struct ld_filter is 52 bytes");
#else
_Static_assert(sizeof(struct ld_peer) == 20, "struct ld_peer is 20 bytes");
_Static_assert(sizeof(struct ld_filter) == 52, "struct ld_filter is 52 bytes");
#endif

/* Attach to the daemon's socket (e.g. "/run/lingerd/lingerd.sock").
 * NULL on failure: LD_EPERM (uid not allowed), LD_ENETDOWN (no daemon),
 * LD_ECONNREFUSED, LD_ETIMEDOUT, LD_EINVAL (protocol or region mismatch). */
ld_client *ld_attach(const char *path);
/* Detach and free; what is still open gets the daemon's exit policy.
 * c may be NULL. */
void ld_detach(ld_client *c);

int ld_listen(ld_client *c, uint16_t port, uint32_t backlog, ld_handle *out);
int ld_listen_on(ld_client *c, uint32_t ring, uint16_t port, uint32_t backlog,
                 ld_handle *out);
/* Wait up to timeout_ms (negative: the call timeout; 0: LD_EWOULDBLOCK if
 * none) for an accepted connection. peer may be NULL. */
int ld_accept(ld_client *c, ld_handle listener, int timeout_ms, ld_handle *out,
              struct ld_peer *peer);
/* Active open to peer (IPv4 or IPv6; a core without IPv6 fails with
 * LD_ENETUNREACH). */
int ld_connect(ld_client *c, const struct ld_peer *peer, ld_handle *out);
int ld_connect_on(ld_client *c, uint32_t ring, const struct ld_peer *peer,
                  ld_handle *out);

/* Bytes accepted, or -1. */
int64_t ld_send(ld_client *c, ld_handle h, const void *buf, size_t len);
/* Bytes received, 0 at end of stream, or -1 (LD_EWOULDBLOCK, LD_ETIMEDOUT,
 * LD_ECONNRESET, ...). timeout_ms as ld_accept. */
int64_t ld_recv(ld_client *c, ld_handle h, void *buf, size_t len, int timeout_ms);

int ld_shutdown(ld_client *c, ld_handle h, int how);
int ld_setlinger(ld_client *c, ld_handle h, const struct ld_linger *l);
/* Non-zero dont: do not linger (SO_DONTLINGER TRUE). */
int ld_setdontlinger(ld_client *c, ld_handle h, int dont);
int ld_getlinger(ld_client *c, ld_handle h, struct ld_linger *out);

/* closesocket, blocking: waits out a linger. */
int ld_closesocket(ld_client *c, ld_handle h);
/* closesocket, non-blocking: LD_EWOULDBLOCK if it would have to linger
 * (the handle stays valid and nothing was started). */
int ld_closesocket_nonblocking(ld_client *c, ld_handle h);
/* Hard close (RST) whatever the linger setting. */
int ld_abort(ld_client *c, ld_handle h);
/* Close every connection of this client matching filter (NULL: all) on
 * every core; mode LD_CLOSE_*; pace_per_s 0 = unpaced. Count or -1. */
int64_t ld_close_matching(ld_client *c, const struct ld_filter *filter, int mode,
                          uint32_t linger_ms, uint32_t pace_per_s);

/* The ABI version of the loaded library (compare with LD_ABI_VERSION). */
uint32_t ld_abi_version(void);
/* This thread's last error code (LD_E*), 0 if none yet. */
int ld_last_error(void);
/* How this thread's last successful close or abort ended (LD_OUTCOME_*). */
int ld_last_outcome(void);
/* The Winsock name of a code, a static string. */
const char *ld_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* LINGERD_H */
