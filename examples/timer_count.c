// A BPF timer in a map value: an XDP program arms it on the first packet; the
// callback counts how often it fired and re-arms itself twice, 1 ms apart.
// In pyebpf, time moves when the test says so: rt.advance_clock(ns).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define CLOCK_MONOTONIC 1
#define PERIOD_NS 1000000

struct elem {
	struct bpf_timer timer;
	__u64 fired;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct elem);
} timers SEC(".maps");

static int on_timer(void *map, __u32 *key, struct elem *val)
{
	val->fired++;
	if (val->fired < 3)
		bpf_timer_start(&val->timer, PERIOD_NS, 0);
	return 0;
}

SEC("xdp")
int arm(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct elem *val = bpf_map_lookup_elem(&timers, &key);

	if (!val)
		return XDP_ABORTED;
	if (bpf_timer_init(&val->timer, &timers, CLOCK_MONOTONIC))
		return XDP_PASS;  /* armed before: -EBUSY */
	bpf_timer_set_callback(&val->timer, on_timer);
	bpf_timer_start(&val->timer, PERIOD_NS, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
