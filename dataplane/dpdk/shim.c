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

/*
 * Up to n (at most 64) fresh mbufs from pool in one bulk get, each with its
 * data pointer and tailroom; one when the pool holds fewer than n, none
 * when it is empty. Returns how many were written to out.
 */
unsigned int lingerd_tx_rooms(struct rte_mempool *pool, struct lingerd_tx_room *out, unsigned int n)
{
	struct rte_mbuf *m[64];
	unsigned int i;

	if (n > 64)
		n = 64;
	if (n == 0)
		return 0;
	if (rte_pktmbuf_alloc_bulk(pool, m, n) != 0) {
		m[0] = rte_pktmbuf_alloc(pool);
		if (m[0] == NULL)
			return 0;
		n = 1;
	}
	for (i = 0; i < n; i++) {
		out[i].mbuf = m[i];
		out[i].data = rte_pktmbuf_mtod(m[i], uint8_t *);
		out[i].room = rte_pktmbuf_tailroom(m[i]);
	}
	return n;
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
