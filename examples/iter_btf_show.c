// SPDX-License-Identifier: GPL-2.0
/* Typed data as text: bpf_seq_printf_btf in a BPF iterator.
 *
 * Each element of an array map holds a struct ack_sample; the program prints
 * it as the kernel's BTF show code renders that struct, with the flags taken
 * from the element's key (BTF_F_COMPACT | NONAME | PTR_RAW | ZERO bits), one
 * element per line. The type id is the kernel's (bpf_core_type_id_kernel: a
 * CO-RE relocation against the kernel's BTF, so the same object loads on any
 * kernel and on pyebpf, whose kernel BTF has other ids).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define __core __attribute__((preserve_access_index))

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
} __core;

struct bpf_map {
	__u32 id;
} __core;

struct bpf_iter__bpf_map_elem {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
	void *key;
	void *value;
} __core;

/* include/net/tcp.h */
struct ack_sample {
	__u32 pkts_acked;
	__s32 rtt_us;
	__u32 in_flight;
};

SEC("iter/bpf_map_elem")
int show_samples(struct bpf_iter__bpf_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	__u32 *key = ctx->key;
	struct btf_ptr p = {};
	int err;

	if (!key || !ctx->value)
		return 0;
	p.ptr = ctx->value;
	p.type_id = bpf_core_type_id_kernel(struct ack_sample);
	err = bpf_seq_printf_btf(seq, &p, sizeof(p), *key & 15);
	BPF_SEQ_PRINTF(seq, " -> %d\n", err);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
