// CO-RE relocations against the object's own types.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct pair {
	int first;
	char pad[4];
	long second;
	unsigned int flag : 3;
} __attribute__((preserve_access_index));

enum color { RED = 1, GREEN = 5 };

SEC("socket")
int core_prog(struct __sk_buff *skb)
{
	int r = 0;

	r += bpf_core_field_offset(struct pair, second);        /* 8 */
	r += bpf_core_field_size(struct pair, second) * 100;    /* 800 */
	r += bpf_core_field_exists(struct pair, first) * 1000;  /* 1000 */
	r += bpf_core_type_size(struct pair) * 10000;           /* 240000 */
	r += bpf_core_enum_value(enum color, GREEN) * 1000000;  /* 5000000 */
	return r;
}

char LICENSE[] SEC("license") = "GPL";
