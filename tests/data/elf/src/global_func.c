// Global (non-static) sub-programs: the verifier checks each once, from its
// BTF prototype, not with the values of each call.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct pair {
	int a, b;
};

/* A pointer argument may be NULL for a global function: this one checks. */
__noinline int pair_sum(struct pair *p)
{
	if (!p)
		return -1;
	return p->a + p->b;
}

/* ... and this one doesn't: the kernel refuses it, whatever its callers pass. */
__noinline int pair_sum_unchecked(struct pair *p)
{
	return p->a + p->b;
}

/* The context can be passed on as such. */
__noinline int skb_len(struct __sk_buff *skb)
{
	return skb->len;
}

/* Only scalars come back from a global function. */
__noinline int twice(int x)
{
	return 2 * x;
}

SEC("socket")
int checked(struct __sk_buff *skb)
{
	struct pair p = { .a = 3, .b = 4 };

	return pair_sum(&p) + skb_len(skb) + twice(5);   /* 7 + len + 10 */
}

SEC("socket")
int unchecked(struct __sk_buff *skb)
{
	struct pair p = { .a = 3, .b = 4 };

	return pair_sum_unchecked(&p);
}

SEC("socket")
int scalar_for_ctx(struct __sk_buff *skb)
{
	return skb_len((struct __sk_buff *)(long)twice(1));
}

char LICENSE[] SEC("license") = "GPL";
