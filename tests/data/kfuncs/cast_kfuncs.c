// bpf_cast_to_kern_ctx and bpf_rdonly_cast: reading the kernel's own ctx structs
// and vmlinux structs through untrusted pointers (tests/kfuncs/test_cast_kfuncs.py).
// The structs are declared with the members used; CO-RE relocates them against
// the target's vmlinux BTF (pyebpf's or the running kernel's).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

struct net_device {
	int ifindex;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	__u8 pkt_type:3;
	unsigned int len;
	__u32 mark;
	__u16 protocol;
	unsigned char *head;
	unsigned char *data;
} __attribute__((preserve_access_index));

struct xdp_rxq_info {
	struct net_device *dev;
	__u32 queue_index;
} __attribute__((preserve_access_index));

struct xdp_buff {
	void *data;
	void *data_end;
	struct xdp_rxq_info *rxq;
	__u32 frame_sz;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[64]);
} blobs SEC(".maps");

SEC("tc")
int kern_skb_len(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	return skb->len;
}

SEC("tc")
int kern_skb_headroom(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	return skb->data - skb->head;
}

SEC("tc")
int kern_skb_dev(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	return skb->dev->ifindex * 1000 + skb->protocol;
}

SEC("tc")
int kern_skb_pkt_type(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	return BPF_CORE_READ_BITFIELD(skb, pkt_type);
}

SEC("tc")
int kern_skb_sees_mark_write(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	ctx->mark = 42;
	return skb->mark;
}

SEC("xdp")
int kern_xdp(struct xdp_md *ctx)
{
	struct xdp_buff *xdp = bpf_cast_to_kern_ctx(ctx);

	return xdp->rxq->queue_index * 100000 + xdp->rxq->dev->ifindex * 10000 +
	       (xdp->data_end - xdp->data);
}

SEC("tc")
int rdonly_map_value(struct __sk_buff *ctx)
{
	__u32 key = 0;
	void *val = bpf_map_lookup_elem(&blobs, &key);
	struct xdp_rxq_info *rxq;

	if (!val)
		return -1;
	rxq = bpf_rdonly_cast(val, bpf_core_type_id_kernel(struct xdp_rxq_info));
	return rxq->queue_index;
}

SEC("tc")
int rdonly_null(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_rdonly_cast(0, bpf_core_type_id_kernel(struct sk_buff));

	return skb->len + 7;
}

SEC("tc")
int rdonly_ctx(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_rdonly_cast(ctx, bpf_core_type_id_kernel(struct sk_buff));

	return skb->len;
}

SEC("tc")
int rdonly_write(struct __sk_buff *ctx)
{
	__u32 key = 0;
	void *val = bpf_map_lookup_elem(&blobs, &key);
	struct xdp_rxq_info *rxq;

	if (!val)
		return -1;
	rxq = bpf_rdonly_cast(val, bpf_core_type_id_kernel(struct xdp_rxq_info));
	rxq->queue_index = 1;
	return 0;
}

SEC("tc")
int kern_skb_write(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	skb->mark = 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
