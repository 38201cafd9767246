// libbpf's "?" section prefix: the program is not loaded unless asked for.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int always(struct __sk_buff *skb)
{
	return 0;
}

SEC("?tc")
int on_request(struct __sk_buff *skb)
{
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
