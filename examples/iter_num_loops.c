// SPDX-License-Identifier: GPL-2.0
/* Open-coded numeric iterators: the bpf_for / bpf_repeat loops of libbpf.
 *
 * libbpf >= 1.2 defines bpf_for() and bpf_repeat() in bpf_helpers.h; older
 * headers (Debian 12 ships 1.1) don't, so they are spelled out below exactly
 * as libbpf writes them. Each loop is a bpf_iter_num on the stack: _new()
 * once, _next() until it returns NULL, _destroy() when the scope ends (the
 * cleanup attribute), which is what the verifier's iterator rules check.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_iter_num {
	__u64 __opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

#ifndef bpf_for
#define bpf_for(i, start, end) for (						\
	struct bpf_iter_num ___it __attribute__((aligned(8),			\
						 cleanup(bpf_iter_num_destroy))),\
			    *___p __attribute__((unused)) = (			\
				bpf_iter_num_new(&___it, (start), (end)),	\
				(void)bpf_iter_num_destroy, (void *)0);		\
	({									\
		int *___t = bpf_iter_num_next(&___it);				\
		(___t && ((i) = *___t, (i) >= (start) && (i) < (end)));	\
	});									\
)
#endif

#ifndef bpf_repeat
#define bpf_repeat(N) for (							\
	struct bpf_iter_num ___it __attribute__((aligned(8),			\
						 cleanup(bpf_iter_num_destroy))),\
			    *___p __attribute__((unused)) = (			\
				bpf_iter_num_new(&___it, 0, (N)),		\
				(void)bpf_iter_num_destroy, (void *)0);		\
	bpf_iter_num_next(&___it);						\
)
#endif

/* Set from user space before loading (a .rodata constant the verifier sees). */
const volatile int n = 10;

/* Sum of the squares of 0..n-1: 285 for n = 10. */
SEC("socket")
int sum_squares(struct __sk_buff *skb)
{
	int i, sum = 0;

	bpf_for(i, 0, n)
		sum += i * i;
	return sum;
}

/* bpf_repeat(n) runs its body n times: 2 * n. */
SEC("socket")
int repeat_twice(struct __sk_buff *skb)
{
	int count = 0;

	bpf_repeat(n)
		count += 2;
	return count;
}

/* Bounds from the iterator make an array index safe: the sum of a
 * 16-element array, read with an index the verifier learns from bpf_for. */
static int table[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

SEC("socket")
int sum_table(struct __sk_buff *skb)
{
	int i, sum = 0;

	bpf_for(i, 0, 16)
		sum += table[i];
	return sum;
}

/* An empty range (start > end) gives an iterator that yields nothing. */
SEC("socket")
int empty_range(struct __sk_buff *skb)
{
	int i, count = 0;

	bpf_for(i, 5, 2)
		count++;
	return count;
}

/* Nested loops, each with its own iterator: the number of pairs (i, j) with
 * 0 <= j < i < 8, i.e. 28. */
SEC("socket")
int nested_pairs(struct __sk_buff *skb)
{
	int i, j, pairs = 0;

	bpf_for(i, 0, 8) {
		bpf_for(j, 0, i)
			pairs++;
	}
	return pairs;
}

/* An iterator in a subprogram's frame: the sum of 1..k, called twice. */
static __attribute__((noinline)) int triangle(int k)
{
	int i, sum = 0;

	bpf_for(i, 1, k + 1)
		sum += i;
	return sum;
}

SEC("socket")
int in_subprogram(struct __sk_buff *skb)
{
	return triangle(4) + triangle(skb->len & 7);
}

char LICENSE[] SEC("license") = "GPL";
