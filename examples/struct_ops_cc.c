// SPDX-License-Identifier: GPL-2.0
/* A TCP congestion control written in BPF: a struct_ops map of type
 * tcp_congestion_ops whose members are BPF programs (a Reno-like slow start
 * and congestion avoidance). pyebpf's simulated TCP stack calls them:
 *
 *     coll = pyebpf.load_object("struct_ops_cc.o", target_btf=kernel_btf())
 *     link = coll.attach_struct_ops("pyebpf_cc")
 *     cc = rt.struct_ops("tcp_congestion_ops", "pyebpf_cc")
 *     cc.ssthresh(sk)
 *
 * Build: clang-19 -O2 -g -target bpf -mcpu=v3 -c struct_ops_cc.c
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char _license[] SEC("license") = "GPL";

/* The kernel structs, as much of them as the programs touch. preserve_access_index
 * makes every field offset a CO-RE relocation, resolved against the kernel's BTF
 * when the object is loaded. */
struct sock {
	int sk_rcvbuf;
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u32 snd_cwnd;
	__u32 snd_cwnd_cnt;
	__u32 snd_ssthresh;
} __attribute__((preserve_access_index));

/* libbpf matches the members of the local struct to the kernel's by name. */
struct tcp_congestion_ops {
	__u32 (*ssthresh)(struct sock *sk);
	void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
	__u32 (*undo_cwnd)(struct sock *sk);
	void (*init)(struct sock *sk);
	char name[16];
};

/* How many times each member ran (array index: 0 ssthresh, 1 cong_avoid, 2 init). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&calls, &what);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("struct_ops/cc_init")
void BPF_PROG(cc_init, struct sock *sk)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	tp->snd_ssthresh = 0x7fffffff;
	count(2);
}

SEC("struct_ops/cc_ssthresh")
__u32 BPF_PROG(cc_ssthresh, struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u32 half = tp->snd_cwnd >> 1;

	count(0);
	return half > 2 ? half : 2;
}

SEC("struct_ops/cc_cong_avoid")
void BPF_PROG(cc_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	count(1);
	if (tp->snd_cwnd < tp->snd_ssthresh) {
		/* Slow start: one segment more per segment acked. */
		tp->snd_cwnd += acked;
		return;
	}
	/* Congestion avoidance: one segment more per window acked. */
	tp->snd_cwnd_cnt += acked;
	if (tp->snd_cwnd_cnt >= tp->snd_cwnd) {
		tp->snd_cwnd_cnt -= tp->snd_cwnd;
		tp->snd_cwnd += 1;
	}
}

SEC("struct_ops/cc_undo_cwnd")
__u32 BPF_PROG(cc_undo_cwnd, struct sock *sk)
{
	return ((const struct tcp_sock *)sk)->snd_cwnd;
}

SEC(".struct_ops.link")
struct tcp_congestion_ops pyebpf_cc = {
	.ssthresh = (void *)cc_ssthresh,
	.cong_avoid = (void *)cc_cong_avoid,
	.undo_cwnd = (void *)cc_undo_cwnd,
	.init = (void *)cc_init,
	.name = "pyebpf_cc",
};
