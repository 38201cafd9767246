// SPDX-License-Identifier: GPL-2.0
// Test object for pyebpf.testing: a program the verifier must reject (it reads
// the packet without checking data_end). Rebuild with ../build.sh.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[12] == 0x08 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
