// SPDX-License-Identifier: GPL-2.0
/* A netfilter program: drop IPv4 TCP and UDP packets to port 23 (telnet), counting them.
 *
 * The context is struct bpf_nf_ctx: pointers to the kernel's nf_hook_state and
 * sk_buff, read through BTF (CO-RE relocates the field offsets). skb->data is
 * the network header at every IPv4 hook; the bytes are copied with
 * bpf_probe_read_kernel. Attach with BPF_LINK_CREATE (attach_type
 * BPF_NETFILTER, pf NFPROTO_IPV4, a hook and a priority). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct nf_hook_state {
	__u8 hook;
	__u8 pf;
} __attribute__((preserve_access_index));

struct sk_buff {
	unsigned int len;
	unsigned char *data;
} __attribute__((preserve_access_index));

struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
} __attribute__((preserve_access_index));

#define NF_DROP 0
#define NF_ACCEPT 1
#define NFPROTO_IPV4 2
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

SEC("netfilter")
int drop_telnet(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	unsigned char hdr[24];
	__u32 key = 0;
	__u64 *count;

	if (ctx->state->pf != NFPROTO_IPV4 || skb->len < sizeof(hdr))
		return NF_ACCEPT;
	if (bpf_probe_read_kernel(hdr, sizeof(hdr), skb->data))
		return NF_ACCEPT;
	/* IPv4 without options, TCP or UDP, destination port 23 */
	if (hdr[0] != 0x45 || (hdr[9] != IPPROTO_TCP && hdr[9] != IPPROTO_UDP) ||
	    hdr[22] != 0 || hdr[23] != 23)
		return NF_ACCEPT;
	count = bpf_map_lookup_elem(&dropped, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return NF_DROP;
}

char LICENSE[] SEC("license") = "GPL";
