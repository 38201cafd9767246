// SPDX-License-Identifier: GPL-2.0
// An XDP port filter: drops TCP packets to a blocked destination port (the keys
// of a hash map, whose values count the drops) and passes everything else.
// Small, with a branch per line and a BPF-to-BPF call, it is the example whose
// covered lines tests/test_coverage.py knows. Rebuild with ./build.sh.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);     /* destination port, host order */
	__type(value, __u64);   /* packets dropped */
} blocked SEC(".maps");

static __noinline int is_tcp(struct iphdr *ip)
{
	return ip->protocol == IPPROTO_TCP;
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct tcphdr *tcp = (void *)(ip + 1);
	__u16 port;
	__u64 *drops;

	if ((void *)(tcp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (!is_tcp(ip))
		return XDP_PASS;
	port = bpf_ntohs(tcp->dest);
	drops = bpf_map_lookup_elem(&blocked, &port);
	if (!drops)
		return XDP_PASS;
	__sync_fetch_and_add(drops, 1);
	bpf_printk("drop port %d", port);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
