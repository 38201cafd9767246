// The old samples/bpf style: a "maps" section of struct bpf_map_def (with
// inner_map_idx), numbered sections filling a program array by convention.
#include <linux/bpf.h>
#define SEC(n) __attribute__((section(n), used))

struct bpf_map_def {
	unsigned int type, key_size, value_size, max_entries, map_flags;
	unsigned int inner_map_idx, numa_node;
};

static long (*bpf_tail_call)(void *ctx, void *map, __u32 idx) = (void *)12;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct bpf_map_def SEC("maps") jmp_table = {
	.type = BPF_MAP_TYPE_PROG_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 8,
};
struct bpf_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 4,
};
struct bpf_map_def SEC("maps") outer = {
	.type = BPF_MAP_TYPE_ARRAY_OF_MAPS, .key_size = 4, .value_size = 0, .max_entries = 2,
	.inner_map_idx = 1,
};

SEC("socket/1")
int second(struct __sk_buff *skb)
{
	__u32 k = 1;
	__u64 *v = bpf_map_lookup_elem(&counters, &k);

	if (v)
		*v += 1;
	return 42;
}

SEC("socket/0")
int first(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jmp_table, 1);
	return 1;
}

char _license[] SEC("license") = "GPL";
