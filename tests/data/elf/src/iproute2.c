// iproute2's conventions: struct bpf_elf_map (36 bytes, with an id) and a
// tail-call section "<map id>/<key>" with no program type of its own.
#include <linux/bpf.h>
#define __section(n) __attribute__((section(n), used))

struct bpf_elf_map {
	__u32 type, size_key, size_value, max_elem, flags, id, pinning, inner_id, inner_idx;
};

static long (*bpf_tail_call)(void *ctx, void *map, __u32 idx) = (void *)12;

struct bpf_elf_map __section("maps") jmp = {
	.type = BPF_MAP_TYPE_PROG_ARRAY, .size_key = 4, .size_value = 4, .max_elem = 2, .id = 1,
};

__section("1/0")
int tail(struct __sk_buff *skb)
{
	return 7;
}

__section("classifier")
int cls_main(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jmp, 0);
	return 0;
}

char __license[] __section("license") = "GPL";
