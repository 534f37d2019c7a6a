// SPDX-License-Identifier: MIT OR Apache-2.0
//
// lingerd.bpf.c: lingerd's XDP steering program. It owns one decision per
// frame: hand it to the queue's AF_XDP socket (XDP_REDIRECT into `xsks`,
// keyed by rx_queue_index) or leave it to the kernel (XDP_PASS).
//
// IPv4 (`daemon_addrs`, 4-byte keys): ARP whose target protocol address is
// ours (requests for us and replies to our own requests), and IPv4 to our
// address, narrowed to TCP destination ports in `ports` or in the engine's
// ephemeral range [eph_lo, eph_hi] (answers to its own connects) when
// `config[0].filter_ports` is set (userspace sets it when it fills `ports`:
// "empty map = all ports").
//
// IPv6 (`daemon_addrs6`, 16-byte keys): the extension headers (Hop-by-Hop,
// Routing, Destination Options, Fragment) are walked, at most
// MAX_EXT_HEADERS of them, each bounds-checked; a longer or truncated chain
// passes. Then, steered:
// - TCP to our address, with the same port filter as IPv4;
// - a fragment (offset or M set) to our address: its ports may not be in
//   it, and the engine counts and drops fragments; an atomic fragment
//   (RFC 6946) is walked through like any other header;
// - ICMPv6 Neighbor Solicitation whose target address (in the message, not
//   the IPv6 destination, which is the solicited-node group) is ours;
// - ICMPv6 Neighbor Advertisement and Packet Too Big to our address.
// The host's own IPv6 (its addresses, its ND, MLD, router advertisements)
// does not match and passes.
//
// Everything else passes, so the host's own traffic keeps working. It never
// modifies a frame and keeps no state; the maps are filled by the loader
// (dataplane/src/port/afxdp/steering.rs). It checks no checksum and no
// hop limit: the engine does.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
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

// IPv6 addresses (16 bytes, network order) -> 1.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct in6_addr);
	__type(value, __u8);
} daemon_addrs6 SEC(".maps");

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

// The port filter, common to both families: `cfg` is config[0] with
// filter_ports set, `tcp` a TCP header already bounds-checked.
static __always_inline int steer_tcp(struct xdp_md *ctx, const struct config *cfg,
				     const struct tcphdr *tcp)
{
	__u16 dport = tcp->dest;
	__u16 port = bpf_ntohs(dport);
	if (port >= cfg->eph_lo && port <= cfg->eph_hi)
		return to_xsk(ctx);
	return bpf_map_lookup_elem(&ports, &dport) ? to_xsk(ctx) : XDP_PASS;
}

// Extension headers walked before giving up (and passing). Linux and
// lingerd's own parser accept more; a TCP peer sends none or one.
#define MAX_EXT_HEADERS 6

// Next header values (RFC 8200 §4.1; IANA protocol numbers).
#define NH_HOP_BY_HOP 0
#define NH_TCP 6
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_ICMPV6 58
#define NH_DEST_OPTS 60

// ICMPv6 types (RFC 4443, RFC 4861).
#define ICMPV6_PACKET_TOO_BIG 2
#define ICMPV6_NEIGHBOR_SOLICIT 135
#define ICMPV6_NEIGHBOR_ADVERT 136

// The first 8 bytes every extension header this walk knows begins with:
// next header, then (all but Fragment) the length in 8-octet units past
// the first 8. For Fragment, bytes 2-3 are offset, reserved bits and M.
struct ext_hdr {
	__u8 nexthdr;
	__u8 len;
	__be16 frag;
	__be32 rest;
};

// ICMPv6 header plus a Neighbor Solicitation's target (RFC 4861 §4.3).
struct icmp6_nd {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be32 reserved;
	struct in6_addr target;
};

static __always_inline int is_ours6(const struct in6_addr *addr)
{
	struct in6_addr key;
	__builtin_memcpy(&key, addr, sizeof(key));
	return bpf_map_lookup_elem(&daemon_addrs6, &key) != 0;
}

static __always_inline int steer_ipv6(struct xdp_md *ctx, struct ipv6hdr *ip6, void *end)
{
	if ((void *)(ip6 + 1) > end || ip6->version != 6)
		return XDP_PASS;
	int ours = is_ours6(&ip6->daddr);
	__u8 next = ip6->nexthdr;
	void *cur = ip6 + 1;
	int i;

#pragma unroll
	for (i = 0; i < MAX_EXT_HEADERS; i++) {
		if (next != NH_HOP_BY_HOP && next != NH_ROUTING && next != NH_DEST_OPTS &&
		    next != NH_FRAGMENT)
			break;
		struct ext_hdr *h = cur;
		if ((void *)(h + 1) > end)
			return XDP_PASS;
		if (next == NH_FRAGMENT) {
			// Offset (13 bits) or M set: a real fragment.
			if (h->frag & bpf_htons(0xfff9))
				return ours ? to_xsk(ctx) : XDP_PASS;
			cur += 8;
		} else {
			cur += ((__u32)h->len + 1) * 8;
		}
		next = h->nexthdr;
	}
	if (next == NH_TCP) {
		struct tcphdr *tcp = cur;
		__u32 zero = 0;
		if (!ours || (void *)(tcp + 1) > end)
			return XDP_PASS;
		struct config *cfg = bpf_map_lookup_elem(&config, &zero);
		if (!cfg || !cfg->filter_ports)
			return to_xsk(ctx);
		return steer_tcp(ctx, cfg, tcp);
	}
	if (next != NH_ICMPV6)
		return XDP_PASS;
	struct icmp6_nd *icmp = cur;
	// Packet Too Big and Neighbor Advertisement need 8 bytes; a
	// Solicitation its target too.
	if (cur + 8 > end)
		return XDP_PASS;
	switch (icmp->type) {
	case ICMPV6_PACKET_TOO_BIG:
	case ICMPV6_NEIGHBOR_ADVERT:
		return ours ? to_xsk(ctx) : XDP_PASS;
	case ICMPV6_NEIGHBOR_SOLICIT:
		if ((void *)(icmp + 1) > end)
			return XDP_PASS;
		return is_ours6(&icmp->target) ? to_xsk(ctx) : XDP_PASS;
	default:
		return XDP_PASS;
	}
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
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return steer_ipv6(ctx, (void *)(eth + 1), end);
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
	return steer_tcp(ctx, cfg, tcp);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
