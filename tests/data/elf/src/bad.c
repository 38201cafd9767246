// A program the verifier must reject: a packet read without a bounds check.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int no_bounds_check(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[12] == 8 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
