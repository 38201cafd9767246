// SPDX-License-Identifier: GPL-2.0
/* The dynptr kfuncs over skb and xdp packets, and the mistakes the verifier
 * refuses (the shapes of the kernel's selftests progs/dynptr_success.c and
 * dynptr_fail.c). tests/kfuncs/test_dynptr_kfuncs.py loads each program on
 * pyebpf and tests/kernel/test_dynptr_kfuncs_differential.py on the kernel.
 * Test runs get the 64 bytes 0, 1, 2 ... 63. Rebuild with ./build.sh.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int bpf_dynptr_from_skb(struct __sk_buff *s, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;
extern int bpf_dynptr_from_xdp(struct xdp_md *x, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;
extern int bpf_dynptr_from_skb_meta(struct __sk_buff *skb_, __u64 flags,
				    struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *p, __u32 offset,
			      void *buffer__opt, __u32 buffer__szk) __ksym;
extern void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *p, __u32 offset,
				   void *buffer__opt, __u32 buffer__szk) __ksym;
extern int bpf_dynptr_adjust(const struct bpf_dynptr *p, __u32 start, __u32 end) __ksym;
extern _Bool bpf_dynptr_is_null(const struct bpf_dynptr *p) __ksym;
extern _Bool bpf_dynptr_is_rdonly(const struct bpf_dynptr *p) __ksym;
extern __u32 bpf_dynptr_size(const struct bpf_dynptr *p) __ksym;
extern int bpf_dynptr_clone(const struct bpf_dynptr *p,
			    struct bpf_dynptr *clone__uninit) __ksym;
extern int bpf_dynptr_copy(struct bpf_dynptr *dst_ptr, __u32 dst_off,
			   struct bpf_dynptr *src_ptr, __u32 src_off, __u32 size) __ksym;
extern int bpf_dynptr_memset(struct bpf_dynptr *p, __u32 offset, __u32 size,
			     __u8 val) __ksym;

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_dynptr);
} values SEC(".maps");

/* -- accepted: what they return and do to the packet ------------------------- */

SEC("tc")
int skb_slice_read(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 10, buf, sizeof(buf));
	if (!d)
		return 1;
	return d[0] * 1000 + d[3];
}

SEC("tc")
int skb_slice_rdwr_write(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[2] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice_rdwr(&p, 2, buf, sizeof(buf));
	if (!d)
		return 1;
	d[0] = 0xaa;
	d[1] = 0xbb;
	return bpf_dynptr_size(&p);
}

SEC("tc")
int skb_slice_no_buffer(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 60, NULL, 4);
	if (!d)
		return 1;
	return d[3];
}

SEC("tc")
int skb_slice_past_end_is_null(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[8] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 60, buf, sizeof(buf));
	return d ? 2 : 1;
}

SEC("tc")
int skb_read_write_helpers(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char in[4] = {}, out[3] = { 7, 8, 9 };
	long r1, r2;

	bpf_dynptr_from_skb(skb, 0, &p);
	r1 = bpf_dynptr_read(in, sizeof(in), &p, 20, 0);
	r2 = bpf_dynptr_write(&p, 5, out, sizeof(out), 0);
	return (r1 + r2) * 10000 + in[0] * 100 + in[3];
}

SEC("tc")
int skb_read_errors(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char in[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
	long past, flags, bad_flags_write;

	bpf_dynptr_from_skb(skb, 0, &p);
	past = bpf_dynptr_read(in, sizeof(in), &p, 60, 0);
	flags = bpf_dynptr_read(in, sizeof(in), &p, 0, 1);
	bad_flags_write = bpf_dynptr_write(&p, 0, in, 1, 1 << 5);
	return -past * 10000 - flags * 100 - bad_flags_write + in[0] * 1000000;
}

SEC("tc")
int skb_bad_flags(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	int err;

	err = bpf_dynptr_from_skb(skb, 1, &p);
	return -err * 1000 + bpf_dynptr_is_null(&p) * 100 + (bpf_dynptr_size(&p) == (__u32)-22);
}

SEC("tc")
int skb_adjust_clone(struct __sk_buff *skb)
{
	struct bpf_dynptr p, c;
	char buf[1] = {};
	__u8 *d;
	int bad_order, bad_range;

	bpf_dynptr_from_skb(skb, 0, &p);
	bpf_dynptr_clone(&p, &c);
	bad_order = bpf_dynptr_adjust(&c, 5, 4);
	bad_range = bpf_dynptr_adjust(&c, 0, 65);
	if (bpf_dynptr_adjust(&c, 30, 40))
		return 1;
	d = bpf_dynptr_slice(&c, 9, buf, 1);
	if (!d)
		return 2;
	return d[0] * 100000 + bpf_dynptr_size(&c) * 1000 + bpf_dynptr_size(&p) * 10
	       - bad_order - bad_range;
}

SEC("tc")
int skb_data_is_null(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	return bpf_dynptr_data(&p, 0, 4) ? 2 : 1;
}

SEC("tc")
int skb_copy_memset(struct __sk_buff *skb)
{
	struct bpf_dynptr p, q;
	int c, m;

	bpf_dynptr_from_skb(skb, 0, &p);
	bpf_dynptr_clone(&p, &q);
	c = bpf_dynptr_copy(&p, 0, &q, 32, 4);
	m = bpf_dynptr_memset(&p, 8, 3, 0x5a);
	return c * 10 + m + bpf_dynptr_memset(&p, 62, 3, 0);
}

SEC("socket")
int socket_skb_is_rdonly(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[1] = {}, v = 1;
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 1);
	if (!d)
		return 1;
	return bpf_dynptr_is_rdonly(&p) * 1000 - bpf_dynptr_write(&p, 0, &v, 1, 0) * 10
	       + (bpf_dynptr_memset(&p, 0, 1, 0) == -22);
}

SEC("xdp")
int xdp_slice_clone_adjust(struct xdp_md *x)
{
	struct bpf_dynptr p, c;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_xdp(x, 0, &p);
	bpf_dynptr_clone(&p, &c);
	bpf_dynptr_adjust(&c, 2, 10);
	d = bpf_dynptr_slice_rdwr(&c, 0, buf, sizeof(buf));
	if (!d)
		return 1;
	d[0] = 7;
	return bpf_dynptr_size(&c) + bpf_dynptr_is_rdonly(&p) * 100
	       + bpf_dynptr_is_null(&c) * 1000;
}

SEC("xdp")
int xdp_read_write(struct xdp_md *x)
{
	struct bpf_dynptr p;
	char in[2] = {}, out[2] = { 0x11, 0x22 };
	long w, r, f;

	bpf_dynptr_from_xdp(x, 0, &p);
	w = bpf_dynptr_write(&p, 1, out, sizeof(out), 0);
	r = bpf_dynptr_read(in, sizeof(in), &p, 2, 0);
	f = bpf_dynptr_write(&p, 0, out, 1, 1);
	return w * 100000 - f * 10000 + in[0] * 100 + in[1];
}

SEC("xdp")
int xdp_copy_memset(struct xdp_md *x)
{
	struct bpf_dynptr p;
	int c, m, big;

	bpf_dynptr_from_xdp(x, 0, &p);
	c = bpf_dynptr_copy(&p, 4, &p, 40, 4);
	m = bpf_dynptr_memset(&p, 0, 2, 0xee);
	big = bpf_dynptr_copy(&p, 0, &p, 32, 40);
	return c * 100 + m * 10 - big;
}

SEC("xdp")
int xdp_data_is_null(struct xdp_md *x)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_xdp(x, 0, &p);
	return bpf_dynptr_data(&p, 0, 4) ? 2 : 1;
}

SEC("xdp")
int xdp_reinit_unreferenced(struct xdp_md *x)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_xdp(x, 0, &p);
	bpf_dynptr_from_xdp(x, 0, &p);
	return bpf_dynptr_size(&p);
}

/* -- refused ------------------------------------------------------------------- */

SEC("tc")
int slice_unchecked(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 4);
	return d[0];
}

SEC("tc")
int slice_write_rdonly(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 4);
	if (!d)
		return 1;
	d[0] = 1;
	return 0;
}

SEC("tc")
int slice_past_size(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 4);
	if (!d)
		return 1;
	return d[4];
}

SEC("tc")
int slice_buffer_too_small(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 8);
	return d ? 1 : 0;
}

SEC("tc")
int slice_buffer_uninit(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[8];
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 8);
	return d ? 1 : 0;
}

SEC("tc")
int slice_size_not_constant(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, NULL, skb->len & 7);
	return d ? 1 : 0;
}

SEC("tc")
int uninit_dynptr(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	return bpf_dynptr_size(&p);
}

SEC("tc")
int clone_of_uninit(struct __sk_buff *skb)
{
	struct bpf_dynptr p, c;

	return bpf_dynptr_clone(&p, &c);
}

SEC("socket")
int rdwr_in_socket_filter(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice_rdwr(&p, 0, buf, 4);
	if (!d)
		return 1;
	return d[0];
}

SEC("tc")
int slice_after_pull_data(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice_rdwr(&p, 0, buf, 4);
	if (!d)
		return 1;
	bpf_skb_pull_data(skb, 0);
	return d[0];
}

SEC("tc")
int slice_after_dynptr_write(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 4);
	if (!d)
		return 1;
	bpf_dynptr_write(&p, 0, buf, 1, 0);
	return d[0];
}

SEC("xdp")
int xdp_slice_after_adjust_head(struct xdp_md *x)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_xdp(x, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 4);
	if (!d)
		return 1;
	bpf_xdp_adjust_head(x, 0);
	return d[0];
}

SEC("xdp")
int xdp_from_skb(struct xdp_md *x)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb((void *)x, 0, &p);
	return 0;
}

SEC("tc")
int skb_from_xdp(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_xdp((void *)skb, 0, &p);
	return 0;
}

SEC("tc")
int dynptr_in_map_value(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct bpf_dynptr *v = bpf_map_lookup_elem(&values, &key);

	if (!v)
		return 1;
	return bpf_dynptr_size(v);
}

SEC("tc")
int dynptr_at_odd_offset(struct __sk_buff *skb)
{
	char stack[24] = {};

	bpf_dynptr_from_skb(skb, 0, (struct bpf_dynptr *)(stack + 4));
	return 0;
}

SEC("tc")
int overwritten_dynptr(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	*(volatile __u64 *)&p = 0;
	return bpf_dynptr_size(&p);
}

SEC("tc")
int read_dynptr_bytes(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	return *(volatile __u32 *)((char *)&p + 8);
}

SEC("tc")
int slice_of_overwritten_dynptr(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice_rdwr(&p, 0, buf, 4);
	if (!d)
		return 1;
	*(volatile __u64 *)&p = 0;
	return d[0];
}

SEC("tc")
int helper_writes_into_dynptr(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	bpf_skb_load_bytes(skb, 0, &p, 4);
	return 0;
}

/* -- ringbuf and local dynptrs: the kfuncs on dynptrs that hold a reference ------- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[2]);
} scratch SEC(".maps");

SEC("tc")
int rb_slice_write_submit(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u8 *d;
	__u32 v = 0x01020304;
	long w;
	int ret;

	if (bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &p)) {
		bpf_ringbuf_discard_dynptr(&p, 0);
		return 1;
	}
	d = bpf_dynptr_slice_rdwr(&p, 0, NULL, 8);
	if (!d) {
		bpf_ringbuf_discard_dynptr(&p, 0);
		return 2;
	}
	d[0] = 0x42;
	w = bpf_dynptr_write(&p, 8, &v, sizeof(v), 0);
	ret = bpf_dynptr_size(&p) * 1000 + bpf_dynptr_is_rdonly(&p) * 100 - w + d[0];
	bpf_ringbuf_submit_dynptr(&p, 0);
	return ret;
}

SEC("tc")
int rb_failed_reserve_is_null(struct __sk_buff *skb)
{
	struct bpf_dynptr p, q;
	int flags, big, n;

	flags = bpf_ringbuf_reserve_dynptr(&rb, 8, 1, &p);
	n = bpf_dynptr_is_null(&p);
	bpf_ringbuf_discard_dynptr(&p, 0);
	big = bpf_ringbuf_reserve_dynptr(&rb, 8192, 0, &q);
	n += bpf_dynptr_is_null(&q);
	bpf_ringbuf_submit_dynptr(&q, 0);
	return -flags * 1000 - big * 10 + n;
}

SEC("tc")
int rb_clone_adjust_copy(struct __sk_buff *skb)
{
	struct bpf_dynptr p, c, pkt;
	__u8 *d;
	int ret;

	bpf_dynptr_from_skb(skb, 0, &pkt);
	if (bpf_ringbuf_reserve_dynptr(&rb, 32, 0, &p)) {
		bpf_ringbuf_discard_dynptr(&p, 0);
		return 1;
	}
	bpf_dynptr_clone(&p, &c);
	bpf_dynptr_adjust(&c, 8, 16);
	ret = bpf_dynptr_copy(&c, 0, &pkt, 20, 8);
	ret += bpf_dynptr_memset(&p, 0, 8, 0x33);
	d = bpf_dynptr_slice(&p, 8, NULL, 8);
	if (!d) {
		bpf_ringbuf_discard_dynptr(&p, 0);
		return 2;
	}
	ret = ret * 100000 + d[0] * 1000 + d[7] * 10 + bpf_dynptr_size(&c) / 8;
	bpf_ringbuf_submit_dynptr(&c, 0);
	return ret;
}

SEC("tc")
int local_from_map_value(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&scratch, &key);
	__u8 *d;
	int err;

	if (!v)
		return 1;
	err = bpf_dynptr_from_mem(v, 16, 0, &p);
	bpf_dynptr_memset(&p, 4, 4, 0x11);
	d = bpf_dynptr_slice(&p, 4, NULL, 4);
	if (!d)
		return 2;
	return err * 100 + d[3] + (bpf_dynptr_data(&p, 0, 16) != 0) * 1000
	       + (bpf_dynptr_from_mem(v, 16, 2, &p) == -22) * 10000;
}

SEC("tc")
int rb_leak(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &p);
	return 0;
}

SEC("tc")
int rb_overwrite_referenced(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &p);
	*(volatile __u64 *)&p = 0;
	bpf_ringbuf_submit_dynptr(&p, 0);
	return 0;
}

SEC("tc")
int rb_submit_uninit(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_ringbuf_submit_dynptr(&p, 0);
	return 0;
}

SEC("tc")
int rb_submit_skb_dynptr(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	bpf_ringbuf_submit_dynptr(&p, 0);
	return 0;
}

SEC("tc")
int rb_submit_twice(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &p);
	bpf_ringbuf_submit_dynptr(&p, 0);
	bpf_ringbuf_submit_dynptr(&p, 0);
	return 0;
}

SEC("tc")
int rb_original_after_clone_submit(struct __sk_buff *skb)
{
	struct bpf_dynptr p, c;

	bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &p);
	bpf_dynptr_clone(&p, &c);
	bpf_ringbuf_submit_dynptr(&c, 0);
	return bpf_dynptr_size(&p);
}

SEC("tc")
int rb_data_after_submit(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u8 *d;

	bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &p);
	d = bpf_dynptr_data(&p, 0, 8);
	if (!d) {
		bpf_ringbuf_discard_dynptr(&p, 0);
		return 1;
	}
	bpf_ringbuf_submit_dynptr(&p, 0);
	return d[0];
}

SEC("tc")
int rb_slice_after_submit(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u8 *d;

	bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &p);
	d = bpf_dynptr_slice(&p, 0, NULL, 8);
	if (!d) {
		bpf_ringbuf_discard_dynptr(&p, 0);
		return 1;
	}
	bpf_ringbuf_submit_dynptr(&p, 0);
	return d[0];
}

SEC("tc")
int local_from_stack(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[8] = {};

	bpf_dynptr_from_mem(buf, sizeof(buf), 0, &p);
	return 0;
}

SEC("tc")
int rb_reserve_in_array(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_ringbuf_reserve_dynptr(&scratch, 8, 0, &p);
	bpf_ringbuf_discard_dynptr(&p, 0);
	return 0;
}

SEC("tc")
int rb_submit_local(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&scratch, &key);

	if (!v)
		return 1;
	bpf_dynptr_from_mem(v, 16, 0, &p);
	bpf_ringbuf_submit_dynptr(&p, 0);
	return 0;
}

SEC("tc")
int local_read_error_keeps_buffer(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&scratch, &key);
	char in[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
	long r;

	if (!v)
		return 1;
	bpf_dynptr_from_mem(v, 16, 0, &p);
	r = bpf_dynptr_read(in, sizeof(in), &p, 12, 0);
	return -r * 100 + in[0];
}

/* -- a callback's const dynptr (bpf_user_ringbuf_drain) ------------------------ */

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} urb SEC(".maps");

static long sample_kfuncs(struct bpf_dynptr *dynptr, void *ctx)
{
	struct bpf_dynptr c;
	__u8 *d;

	bpf_dynptr_clone(dynptr, &c);
	bpf_dynptr_adjust(dynptr, 0, 4);
	d = bpf_dynptr_slice(dynptr, 0, NULL, 4);
	if (!d)
		return 1;
	*(long *)ctx += d[0] + bpf_dynptr_size(&c) + bpf_dynptr_is_rdonly(dynptr);
	return 0;
}

SEC("tc")
int user_ringbuf_const_dynptr(struct __sk_buff *skb)
{
	long sum = 0;

	return bpf_user_ringbuf_drain(&urb, sample_kfuncs, &sum, 0) + sum;
}

static long sample_rdwr(struct bpf_dynptr *dynptr, void *ctx)
{
	__u8 *d = bpf_dynptr_slice_rdwr(dynptr, 0, NULL, 4);

	if (d)
		d[0] = 1;
	return 0;
}

SEC("tc")
int user_ringbuf_rdwr_slice(struct __sk_buff *skb)
{
	return bpf_user_ringbuf_drain(&urb, sample_rdwr, NULL, 0);
}

static long sample_write(struct bpf_dynptr *dynptr, void *ctx)
{
	char v = 1;

	return bpf_dynptr_write(dynptr, 0, &v, 1, 0) ? 0 : 1;
}

SEC("tc")
int user_ringbuf_write(struct __sk_buff *skb)
{
	return bpf_user_ringbuf_drain(&urb, sample_write, NULL, 0);
}

static long sample_clone_into(struct bpf_dynptr *dynptr, void *ctx)
{
	bpf_dynptr_clone(dynptr, dynptr);
	return 0;
}

SEC("tc")
int user_ringbuf_clone_into_const(struct __sk_buff *skb)
{
	return bpf_user_ringbuf_drain(&urb, sample_clone_into, NULL, 0);
}

static long sample_submit(struct bpf_dynptr *dynptr, void *ctx)
{
	bpf_ringbuf_submit_dynptr(dynptr, 0);
	return 0;
}

SEC("tc")
int user_ringbuf_submit_const(struct __sk_buff *skb)
{
	return bpf_user_ringbuf_drain(&urb, sample_submit, NULL, 0);
}

/* -- the packet changes under a dynptr ------------------------------------------- */

SEC("tc")
int skb_shrunk_under_dynptr(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = { 1, 1, 1, 1 };
	long r;

	bpf_dynptr_from_skb(skb, 0, &p);
	bpf_skb_change_tail(skb, 20, 0);
	r = bpf_dynptr_read(buf, sizeof(buf), &p, 30, 0);
	return -r * 10000 + buf[0] * 1000 + (bpf_dynptr_slice(&p, 30, buf, 4) != 0) * 100
	       + bpf_dynptr_size(&p);
}

SEC("xdp")
int xdp_shrunk_under_dynptr(struct xdp_md *x)
{
	struct bpf_dynptr p;
	char buf[4] = { 9, 9, 9, 9 };
	__u8 *d;
	long r;

	bpf_dynptr_from_xdp(x, 0, &p);
	bpf_xdp_adjust_tail(x, -20);
	r = bpf_dynptr_read(buf, sizeof(buf), &p, 42, 0);
	d = bpf_dynptr_slice(&p, 42, buf, sizeof(buf));
	if (!d)
		return 1;
	return -r * 100000 + (d == (void *)buf) * 10000 + d[0] * 100 + d[3];
}

static __noinline int size_in_subprog(struct bpf_dynptr *p)
{
	return bpf_dynptr_size(p);
}

SEC("tc")
int dynptr_in_subprog(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	return size_in_subprog(&p);
}

SEC("tc")
int from_skb_not_ctx(struct __sk_buff *skb)
{
	struct bpf_dynptr p, q;

	bpf_dynptr_from_skb((void *)&q, 0, &p);
	return 0;
}

/* -- what a slice's buffer may be, and slices as helper memory ------------------- */

SEC("tc")
int slice_buffer_in_map_value(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&scratch, &key);
	__u8 *d;

	if (!v)
		return 1;
	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, v, 16);
	return d ? d[15] : 2;
}

SEC("tc")
int slice_buffer_in_packet(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct bpf_dynptr p;
	__u8 *d;

	if (data + 8 > end)
		return 1;
	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, data, 8);
	return d ? d[7] : 2;
}

SEC("tc")
int empty_slice_at_the_end(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	return bpf_dynptr_slice(&p, 64, NULL, 0) ? 7 : 3;
}

SEC("tc")
int null_dynptr(struct __sk_buff *skb)
{
	return bpf_dynptr_size((void *)0);
}

SEC("tc")
int slice_as_helper_memory(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[16] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice_rdwr(&p, 8, buf, 16);
	if (!d)
		return 1;
	return bpf_skb_load_bytes(skb, 40, d, 16) + d[3];
}

/* -- other program types, branches and loops ----------------------------------- */

SEC("cgroup_skb/ingress")
int cgroup_skb_is_rdonly(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[2] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 1, buf, sizeof(buf));
	return d && d[1] == d[0] + 1 && bpf_dynptr_is_rdonly(&p);
}

SEC("tc")
int dynptr_types_merge(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&scratch, &key);

	if (!v)
		return 1;
	if (skb->len > 40)
		bpf_dynptr_from_skb(skb, 0, &p);
	else
		bpf_dynptr_from_mem(v, 16, 0, &p);
	return bpf_dynptr_size(&p);
}

SEC("tc")
int slices_in_a_loop(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	int i, sum = 0;

	bpf_dynptr_from_skb(skb, 0, &p);
	for (i = 0; i < 16; i++) {
		__u8 *d = bpf_dynptr_slice(&p, i * 4, buf, sizeof(buf));

		if (!d)
			break;
		sum += d[0] + d[3];
	}
	return sum;
}

/* -- skb metadata: none in a tc test run ----------------------------------------- */

SEC("tc")
int skb_meta_is_empty(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char b[1] = { 9 };
	int err;
	long r, w;

	err = bpf_dynptr_from_skb_meta(skb, 0, &p);
	r = bpf_dynptr_read(b, 1, &p, 0, 0);
	w = bpf_dynptr_write(&p, 0, b, 1, 0);
	return bpf_dynptr_size(&p) * 100000 - err * 10000 - r * 100 - w + b[0] * 1000000
	       + (bpf_dynptr_slice(&p, 0, NULL, 0) != 0) * 10000000
	       + bpf_dynptr_is_rdonly(&p) * 100000000;
}

SEC("tc")
int skb_meta_bad_flags(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	return -bpf_dynptr_from_skb_meta(skb, 2, &p) * 10 + bpf_dynptr_is_null(&p);
}

SEC("socket")
int skb_meta_in_socket_filter(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb_meta(skb, 0, &p);
	return 0;
}

SEC("tc")
int skb_meta_slice_after_write(struct __sk_buff *skb)
{
	struct bpf_dynptr p, m;
	char b[1] = {};
	__u8 *d;

	bpf_dynptr_from_skb(skb, 0, &p);
	bpf_dynptr_from_skb_meta(skb, 0, &m);
	d = bpf_dynptr_slice(&p, 0, b, 1);
	if (!d)
		return 1;
	bpf_dynptr_write(&m, 0, b, 0, 0);
	return d[0];
}

/* -- offsets and sizes from the packet (the differential test's random packets) -- */

SEC("tc")
int skb_params_from_packet(struct __sk_buff *skb)
{
	struct bpf_dynptr p, c;
	__u8 hdr[6] = {};
	char buf[4] = { 7, 7, 7, 7 };
	long a, r, m, cp, w;

	if (bpf_skb_load_bytes(skb, 0, hdr, sizeof(hdr)))
		return -1;
	bpf_dynptr_from_skb(skb, 0, &p);
	bpf_dynptr_clone(&p, &c);
	a = bpf_dynptr_adjust(&c, hdr[0], hdr[1]);
	r = bpf_dynptr_read(buf, sizeof(buf), &c, hdr[2], 0);
	m = bpf_dynptr_memset(&c, hdr[3], hdr[4] & 7, 0xab);
	cp = bpf_dynptr_copy(&p, hdr[5], &c, 0, 4);
	w = bpf_dynptr_write(&c, hdr[2], buf, 2, 0);
	return ((a & 0xff) << 24) ^ ((r & 0xff) << 16) ^ ((m & 0xff) << 8) ^ (cp & 0xff)
	       ^ (w << 4) ^ bpf_dynptr_size(&c) ^ (buf[0] << 12);
}

SEC("xdp")
int xdp_params_from_packet(struct xdp_md *x)
{
	struct bpf_dynptr p, c;
	__u8 hdr[6] = {};
	char buf[4] = { 7, 7, 7, 7 };
	__u8 *d;
	long a, r, m, cp;

	bpf_dynptr_from_xdp(x, 0, &p);
	if (bpf_dynptr_read(hdr, sizeof(hdr), &p, 0, 0))
		return 0;
	bpf_dynptr_clone(&p, &c);
	a = bpf_dynptr_adjust(&c, hdr[0], hdr[1]);
	r = bpf_dynptr_read(buf, sizeof(buf), &c, hdr[2], 0);
	m = bpf_dynptr_memset(&c, hdr[3], hdr[4] & 7, 0xab);
	cp = bpf_dynptr_copy(&p, hdr[5], &c, 0, 4);
	d = bpf_dynptr_slice_rdwr(&c, hdr[2], buf, 4);
	if (d)
		d[0] ^= 0x55;
	return ((a & 0xff) << 24) ^ ((r & 0xff) << 16) ^ ((m & 0xff) << 8) ^ (cp & 0xff)
	       ^ bpf_dynptr_size(&c) ^ (buf[0] << 12) ^ (d ? 0x100000 : 0);
}

/* -- a global function's dynptr argument: a read-only LOCAL dynptr to its body --- */

__noinline int global_size_and_byte(const struct bpf_dynptr *p)
{
	__u8 *d = bpf_dynptr_slice(p, 1, NULL, 1);

	return bpf_dynptr_size(p) + (d ? d[0] : 100);
}

SEC("tc")
int dynptr_to_global_func(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	return global_size_and_byte(&p);
}

SEC("tc")
int uninit_dynptr_to_global_func(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	return global_size_and_byte(&p);
}

__noinline int global_rdwr_slice(const struct bpf_dynptr *p)
{
	__u8 *d = bpf_dynptr_slice_rdwr(p, 0, NULL, 1);

	return d ? d[0] : 100;
}

SEC("tc")
int global_func_rdwr_slice(struct __sk_buff *skb)
{
	struct bpf_dynptr p;

	bpf_dynptr_from_skb(skb, 0, &p);
	return global_rdwr_slice(&p);
}

SEC("tc")
int spilled_slice_after_pull_data(struct __sk_buff *skb)
{
	struct bpf_dynptr p;
	char buf[4] = {};
	__u8 *volatile d;

	bpf_dynptr_from_skb(skb, 0, &p);
	d = bpf_dynptr_slice(&p, 0, buf, 4);
	if (!d)
		return 1;
	bpf_skb_pull_data(skb, 0);
	return d[0];
}
