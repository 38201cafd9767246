// Global data and __kconfig externs: .data, .rodata (frozen, read-only to the
// program), .bss, a custom .rodata.cfg section, and .kconfig.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 drop_port = 7;           // .rodata
const volatile __u32 cfg_mult SEC(".rodata.cfg") = 3;
__u64 packets = 0;                            // .bss
__u64 bytes_seen = 100;                       // .data
extern int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig __weak;

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
	__u64 len = ctx->data_end - ctx->data;

	packets += 1;
	bytes_seen += len * cfg_mult;
	if (LINUX_KERNEL_VERSION < 0x60000)
		return XDP_ABORTED;
	if (CONFIG_HZ == 1000)
		return XDP_TX;
	return len == drop_port ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
