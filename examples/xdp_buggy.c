// SPDX-License-Identifier: GPL-2.0
// A deliberately broken XDP program, for learning to read verifier errors with
// pyebpf.explain: it checks that the Ethernet header fits in the packet, but
// then reads the IP header's protocol without checking that the IP header fits
// too. The verifier rejects it; explain() shows the path and a packet (an
// IPv4 Ethernet frame cut short) that makes the read go past data_end.
// Rebuild with ./build.sh.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int xdp_buggy(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	/* Missing: if ((void *)(ip + 1) > data_end) return XDP_PASS; */
	return ip->protocol == IPPROTO_UDP ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
