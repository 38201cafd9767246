// SPDX-License-Identifier: GPL-2.0
// Test object for pyebpf.testing: an XDP program keyed by a struct flow, with a
// struct value (bitfields included), a config array and a per-CPU counter.
// Rebuild with ../build.sh.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct flow {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct stats {
	__u64 packets;
	__u64 bytes;
	__u32 last_len;
	__u32 seen_tcp : 1;
	__u32 last_ttl : 8;
	__u32 spare : 23;
};

struct config {
	__u32 drop_proto;	/* 0: drop nothing */
	__u8 rewrite_ttl;	/* 0: leave the TTL alone */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct flow);
	__type(value, struct stats);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

SEC("xdp")
int xdp_flows(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *l4;
	struct flow key = {};
	struct stats *st, init = {};
	struct config *cfg;
	__u32 zero = 0, verdict = XDP_PASS, idx;
	__u64 *count;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.proto = ip->protocol;
	l4 = (void *)(ip + 1);
	if ((ip->protocol == IPPROTO_UDP || ip->protocol == IPPROTO_TCP) &&
	    (void *)(l4 + 1) <= data_end) {
		key.sport = bpf_ntohs(l4->source);
		key.dport = bpf_ntohs(l4->dest);
	}
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg) {
		if (cfg->drop_proto && cfg->drop_proto == ip->protocol)
			verdict = XDP_DROP;
		if (cfg->rewrite_ttl)
			ip->ttl = cfg->rewrite_ttl;
	}
	st = bpf_map_lookup_elem(&flows, &key);
	if (!st) {
		bpf_map_update_elem(&flows, &key, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&flows, &key);
		if (!st)
			return XDP_ABORTED;
	}
	st->packets++;
	st->bytes += data_end - data;
	st->last_len = data_end - data;
	if (ip->protocol == IPPROTO_TCP)
		st->seen_tcp = 1;
	st->last_ttl = ip->ttl;
	idx = verdict == XDP_DROP;
	count = bpf_map_lookup_elem(&verdicts, &idx);
	if (count)
		*count += 1;
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
