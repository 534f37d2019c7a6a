/*
 * lingerd's DPDK shim: out-of-line wrappers for the static-inline fast path
 * of DPDK 22.11 (burst calls, mbuf fields and allocation, rte_errno, the
 * lcore id), which bindgen cannot turn into callable symbols. The header
 * also names the DPDK headers bindgen reads (with the allowlist in
 * dataplane/build.rs). Each wrapper does what its DPDK namesake does and
 * nothing else; the safety contracts are stated on the Rust side, in
 * dataplane/src/sys/dpdk.rs.
 */
#ifndef LINGERD_DPDK_SHIM_H
#define LINGERD_DPDK_SHIM_H

#include <stdint.h>

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* rte_eth_rx_burst / rte_eth_tx_burst. */
uint16_t lingerd_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t lingerd_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* rte_pktmbuf_alloc, rte_pktmbuf_free, rte_pktmbuf_free_bulk. */
struct rte_mbuf *lingerd_pktmbuf_alloc(struct rte_mempool *pool);
void lingerd_pktmbuf_free(struct rte_mbuf *m);
void lingerd_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);

/* rte_pktmbuf_mtod, the first segment's data_len, nb_segs. */
uint8_t *lingerd_mbuf_data(struct rte_mbuf *m);
uint16_t lingerd_mbuf_data_len(const struct rte_mbuf *m);
uint16_t lingerd_mbuf_nb_segs(const struct rte_mbuf *m);
/* rte_pktmbuf_tailroom: bytes writable after the data. */
uint16_t lingerd_mbuf_tailroom(const struct rte_mbuf *m);
/* Sets a one-segment mbuf's data_len and pkt_len to len (len <= tailroom
 * of the empty mbuf, checked by the caller). */
void lingerd_mbuf_set_len(struct rte_mbuf *m, uint16_t len);

/* rte_errno, rte_lcore_id(). */
int lingerd_errno(void);
unsigned int lingerd_lcore_id(void);

/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP (macro expressions bindgen skips). */
uint64_t lingerd_rss_ip_tcp(void);
/* RTE_MBUF_DEFAULT_BUF_SIZE. */
uint16_t lingerd_mbuf_default_buf_size(void);

#endif
