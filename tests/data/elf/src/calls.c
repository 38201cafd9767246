// BPF-to-BPF calls: a static and a global sub-program in .text, one calling
// the other, and a static callback passed to bpf_loop (a function pointer).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __noinline int square(int x)
{
	return x * x;
}

__noinline int sum_squares(int n)
{
	int s = 0;

	for (int i = 1; i <= n && i < 8; i++)
		s += square(i);
	return s;
}

static long add_index(__u32 index, void *ctx)
{
	*(long *)ctx += index;
	return 0;
}

SEC("socket")
int use_calls(struct __sk_buff *skb)
{
	return sum_squares(3) + square(2);          /* 14 + 4 */
}

SEC("socket")
int use_loop(struct __sk_buff *skb)
{
	long total = 0;

	bpf_loop(5, add_index, &total, 0);          /* 0+1+2+3+4 */
	return total;
}

char LICENSE[] SEC("license") = "GPL";
