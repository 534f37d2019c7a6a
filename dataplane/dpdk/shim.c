/*
 * Out-of-line copies of DPDK 22.11's static-inline functions for
 * lingerd's sys::dpdk (see shim.h). Compiled by dataplane/build.rs with
 * pkg-config's cflags for libdpdk, verbatim.
 */
#include "shim.h"

uint16_t lingerd_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t lingerd_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *lingerd_pktmbuf_alloc(struct rte_mempool *pool)
{
	return rte_pktmbuf_alloc(pool);
}

void lingerd_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void lingerd_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}

uint8_t *lingerd_mbuf_data(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, uint8_t *);
}

uint16_t lingerd_mbuf_data_len(const struct rte_mbuf *m)
{
	return m->data_len;
}

uint16_t lingerd_mbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint16_t lingerd_mbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

void lingerd_mbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	m->data_len = len;
	m->pkt_len = len;
}

int lingerd_errno(void)
{
	return rte_errno;
}

unsigned int lingerd_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t lingerd_rss_ip_tcp(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP;
}

uint16_t lingerd_mbuf_default_buf_size(void)
{
	return RTE_MBUF_DEFAULT_BUF_SIZE;
}
