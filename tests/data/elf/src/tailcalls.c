// A program array and a map of maps with initial values (__array), and a
// map pinned by name.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int leaf(struct xdp_md *ctx);

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [1] = &inner_a },
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} jump SEC(".maps") = {
	.values = { [2] = (void *)&leaf },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared SEC(".maps");

SEC("xdp")
int leaf(struct xdp_md *ctx)
{
	return XDP_TX;
}

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	__u32 k = 1, zero = 0, *v;
	void *in = bpf_map_lookup_elem(&outer, &k);

	if (in) {
		v = bpf_map_lookup_elem(in, &zero);
		if (v)
			*v += 1;
	}
	bpf_tail_call(ctx, &jump, 2);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
