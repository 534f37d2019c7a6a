// SPDX-License-Identifier: MIT OR Apache-2.0
//
// lingerd.bpf.c: lingerd's XDP steering program. It owns one decision per
// frame: hand it to the queue's AF_XDP socket (XDP_REDIRECT into `xsks`,
// keyed by rx_queue_index) or leave it to the kernel (XDP_PASS). Steered:
// ARP whose target protocol address is one of `daemon_addrs` (requests for
// us and replies to our own requests), and IPv4 to one of `daemon_addrs`,
// narrowed to TCP destination ports in `ports` or in the engine's ephemeral
// range [eph_lo, eph_hi] (answers to its own connects) when
// `config[0].filter_ports` is set (userspace sets it when it fills `ports`:
// "empty map = all ports").
// Everything else passes, so the host's own traffic keeps working. It never
// modifies a frame and keeps no state; the maps are filled by the loader
// (dataplane/src/port/afxdp/steering.rs).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// IPv4 addresses in network byte order -> 1.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} daemon_addrs SEC(".maps");

// TCP destination ports in network byte order -> 1.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} ports SEC(".maps");

struct config {
	__u32 filter_ports;
	__u16 eph_lo; // host byte order, inclusive; lo > hi: no range
	__u16 eph_hi;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

// The ARP body for Ethernet/IPv4 (RFC 826), after the 8-byte fixed header.
struct arp_eth_ipv4 {
	__u8 sha[ETH_ALEN];
	__be32 spa;
	__u8 tha[ETH_ALEN];
	__be32 tpa;
} __attribute__((packed));

static __always_inline int to_xsk(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

SEC("xdp")
int lingerd_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		struct arp_eth_ipv4 *arp = (void *)(eth + 1) + 8;
		if ((void *)(arp + 1) > end)
			return XDP_PASS;
		__u32 tpa = arp->tpa;
		return bpf_map_lookup_elem(&daemon_addrs, &tpa) ? to_xsk(ctx) : XDP_PASS;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	__u32 daddr = ip->daddr;
	if (!bpf_map_lookup_elem(&daemon_addrs, &daddr))
		return XDP_PASS;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->filter_ports)
		return to_xsk(ctx);
	// Port filtering: only TCP without IP options (lingerd drops the rest
	// anyway), and never a later fragment.
	if (ip->protocol != IPPROTO_TCP || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x1fff)))
		return XDP_PASS;
	struct tcphdr *tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > end)
		return XDP_PASS;
	__u16 dport = tcp->dest;
	__u16 port = bpf_ntohs(dport);
	if (port >= cfg->eph_lo && port <= cfg->eph_hi)
		return to_xsk(ctx);
	return bpf_map_lookup_elem(&ports, &dport) ? to_xsk(ctx) : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
