// SPDX-License-Identifier: GPL-2.0
// An XDP packet counter: packets per IP protocol (a hash map) and bytes per CPU
// (a per-CPU array). Every packet passes. Rebuild with ./build.sh.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);     /* IP protocol (6 TCP, 17 UDP...); 256: not IPv4 */
	__type(value, __u64);   /* packets */
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);   /* bytes seen by each CPU */
} bytes SEC(".maps");

SEC("xdp")
int xdp_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__u32 key = 256, zero = 0;
	__u64 one = 1, *val;

	if ((void *)(ip + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP))
		key = ip->protocol;

	val = bpf_map_lookup_elem(&counts, &key);
	if (val)
		__sync_fetch_and_add(val, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST);

	val = bpf_map_lookup_elem(&bytes, &zero);
	if (val)
		*val += data_end - data;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
