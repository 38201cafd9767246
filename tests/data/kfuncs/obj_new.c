// Program-allocated objects: bpf_obj_new / bpf_obj_drop / bpf_refcount_acquire
// and stashing them in map __kptr fields with bpf_kptr_xchg.
// The kfunc declarations are those of libbpf's bpf_experimental.h.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;
extern void *bpf_refcount_acquire_impl(void *kptr, void *meta) __ksym;
extern void *bpf_percpu_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
extern void bpf_percpu_obj_drop_impl(void *kptr, void *meta) __ksym;

#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)
#define bpf_refcount_acquire(kptr) ((typeof(kptr))bpf_refcount_acquire_impl(kptr, NULL))
#define bpf_percpu_obj_new(type) \
	((type __percpu_kptr *)bpf_percpu_obj_new_impl(bpf_core_type_id_local(type), NULL))
#define bpf_percpu_obj_drop(kptr) bpf_percpu_obj_drop_impl(kptr, NULL)
#define __kptr_untrusted __attribute__((btf_type_tag("kptr_untrusted")))
#define __percpu_kptr __attribute__((btf_type_tag("percpu_kptr")))

struct bpf_refcount {
	__u32 __opaque[1];
} __attribute__((aligned(4)));

struct obj_node {
	long key;
	long val;
};

struct obj_counted {
	struct bpf_refcount ref;
	long val;
};

struct obj_pcpu {
	long hits;
};

struct map_value {
	struct obj_node __kptr *node;
	struct obj_node __kptr_untrusted *peek;
	struct obj_pcpu __percpu_kptr *pc;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, int);
	__type(value, struct map_value);
	__uint(max_entries, 1);
} stash_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, int);
	__type(value, struct map_value);
	__uint(max_entries, 4);
} stash_hash SEC(".maps");

/* The kernel's own test object (net/bpf/test_run.c); bpf_kfunc_call_test_release
 * is its destructor kfunc. */
struct prog_test_member1 {
	int a;
};

struct prog_test_member {
	struct prog_test_member1 m;
	int c;
};

struct prog_test_ref_kfunc {
	int a;
	int b;
	struct prog_test_member memb;
	struct prog_test_ref_kfunc *next;
	int cnt;
};

extern void bpf_kfunc_call_test_release(struct prog_test_ref_kfunc *p) __ksym;

struct kernel_value {
	struct prog_test_ref_kfunc __kptr *ref;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, int);
	__type(value, struct kernel_value);
	__uint(max_entries, 1);
} kernel_kptrs SEC(".maps");

/* Take the kernel object out of the map and release it: 100 when there is none. */
SEC("tc")
int take_kernel_object(struct __sk_buff *skb)
{
	int k = 0;
	struct kernel_value *v = bpf_map_lookup_elem(&kernel_kptrs, &k);
	struct prog_test_ref_kfunc *p;

	if (!v)
		return 1;
	p = bpf_kptr_xchg(&v->ref, NULL);
	if (!p)
		return 100;
	bpf_kfunc_call_test_release(p);
	return 0;
}

/* Rejected: what bpf_kptr_xchg returns may be NULL. */
SEC("tc")
int release_maybe_null(struct __sk_buff *skb)
{
	int k = 0;
	struct kernel_value *v = bpf_map_lookup_elem(&kernel_kptrs, &k);

	if (!v)
		return 1;
	bpf_kfunc_call_test_release(bpf_kptr_xchg(&v->ref, NULL));
	return 0;
}

/* Rejected: the kernel's object, taken out, must be released. */
SEC("tc")
int leak_kernel_object(struct __sk_buff *skb)
{
	int k = 0;
	struct kernel_value *v = bpf_map_lookup_elem(&kernel_kptrs, &k);
	struct prog_test_ref_kfunc *p;

	if (!v)
		return 1;
	p = bpf_kptr_xchg(&v->ref, NULL);
	return p ? p->a : 100;
}

/* Allocate, write, read back, drop: 3 + 39. */
SEC("tc")
int new_write_drop(struct __sk_buff *skb)
{
	struct obj_node *n = bpf_obj_new(typeof(*n));
	long r;

	if (!n)
		return 1;
	n->key = 3;
	n->val = 39;
	r = n->key + n->val;
	bpf_obj_drop(n);
	return r;
}

/* Put a new node with val = skb->len into a map's kptr; 0, or 3 when one was there. */
static int stash(void *map, struct __sk_buff *skb)
{
	int k = 0;
	struct map_value *v = bpf_map_lookup_elem(map, &k);
	struct obj_node *n;

	if (!v)
		return 1;
	n = bpf_obj_new(typeof(*n));
	if (!n)
		return 2;
	n->val = skb->len;
	n = bpf_kptr_xchg(&v->node, n);
	if (n) {
		bpf_obj_drop(n);
		return 3;
	}
	return 0;
}

/* Take the node out again: its val, or 100 when the field is empty. */
static int unstash(void *map)
{
	int k = 0;
	struct map_value *v = bpf_map_lookup_elem(map, &k);
	struct obj_node *n;
	long val;

	if (!v)
		return 1;
	n = bpf_kptr_xchg(&v->node, NULL);
	if (!n)
		return 100;
	val = n->val;
	bpf_obj_drop(n);
	return val;
}

SEC("tc")
int stash_in_array(struct __sk_buff *skb)
{
	return stash(&stash_array, skb);
}

SEC("tc")
int unstash_from_array(struct __sk_buff *skb)
{
	return unstash(&stash_array);
}

SEC("tc")
int stash_in_hash(struct __sk_buff *skb)
{
	int k = 0;
	struct map_value zero = {};

	bpf_map_update_elem(&stash_hash, &k, &zero, BPF_NOEXIST);
	return stash(&stash_hash, skb);
}

SEC("tc")
int unstash_from_hash(struct __sk_buff *skb)
{
	return unstash(&stash_hash);
}

/* Read the stashed node in place (an RCU-less local kptr reads as untrusted). */
SEC("tc")
int peek_array(struct __sk_buff *skb)
{
	int k = 0;
	struct map_value *v = bpf_map_lookup_elem(&stash_array, &k);
	struct obj_node *n;

	if (!v)
		return 1;
	n = v->node;
	if (!n)
		return 100;
	return n->val;
}

/* Two owning references on one refcounted object: each drop releases one. */
SEC("tc")
int refcounted(struct __sk_buff *skb)
{
	struct obj_counted *c = bpf_obj_new(typeof(*c));
	struct obj_counted *d;
	long v;

	if (!c)
		return 1;
	c->val = 5;
	d = bpf_refcount_acquire(c);
	bpf_obj_drop(c);
	if (!d)
		return 2;
	v = d->val;
	bpf_obj_drop(d);
	return v;
}

/* A per-CPU object goes into the map; this CPU's copy is written and read back
 * (the kernel doesn't zero a new per-CPU object: it may hold stale bytes). */
SEC("tc")
int percpu_stash(struct __sk_buff *skb)
{
	int k = 0;
	struct map_value *v = bpf_map_lookup_elem(&stash_array, &k);
	struct obj_pcpu __percpu_kptr *p;
	struct obj_pcpu *mine;

	if (!v)
		return 1;
	p = bpf_percpu_obj_new(struct obj_pcpu);
	if (!p)
		return 2;
	p = bpf_kptr_xchg(&v->pc, p);
	if (p)
		bpf_percpu_obj_drop(p);
	p = v->pc;
	if (!p)
		return 3;
	mine = bpf_this_cpu_ptr(p);
	mine->hits = 7;
	return mine->hits;
}

struct obj_box {
	long tag;
	struct obj_node __kptr *inner;
};

/* An object holding another in a kptr of its own: dropping the box drops both. */
SEC("tc")
int box_in_box(struct __sk_buff *skb)
{
	struct obj_box *b = bpf_obj_new(typeof(*b));
	struct obj_node *n;
	long t;

	if (!b)
		return 1;
	n = bpf_obj_new(typeof(*n));
	if (!n) {
		bpf_obj_drop(b);
		return 2;
	}
	n->val = 9;
	n = bpf_kptr_xchg(&b->inner, n);
	if (n)
		bpf_obj_drop(n);
	b->tag = 4;
	t = b->tag;
	bpf_obj_drop(b);
	return t;
}

/* Rejected: the object is neither dropped nor stashed. */
SEC("tc")
int leak(struct __sk_buff *skb)
{
	struct obj_node *n = bpf_obj_new(typeof(*n));

	if (!n)
		return 0;
	n->val = 1;
	return 0;
}

/* Rejected: the object is read after it was dropped. */
SEC("tc")
int use_after_drop(struct __sk_buff *skb)
{
	struct obj_node *n = bpf_obj_new(typeof(*n));

	if (!n)
		return 0;
	bpf_obj_drop(n);
	return n->val;
}

/* Rejected: bpf_obj_drop of what may be NULL. */
SEC("tc")
int drop_maybe_null(struct __sk_buff *skb)
{
	struct obj_node *n = bpf_obj_new(typeof(*n));

	bpf_obj_drop(n);
	return 0;
}

/* Rejected: a plain store into a referenced kptr field. */
SEC("tc")
int store_to_kptr(struct __sk_buff *skb)
{
	int k = 0;
	struct map_value *v = bpf_map_lookup_elem(&stash_array, &k);
	struct obj_node *n;

	if (!v)
		return 0;
	n = bpf_obj_new(typeof(*n));
	if (!n)
		return 0;
	v->node = n;
	return 0;
}

/* Rejected: bpf_kptr_xchg on an unreferenced (__kptr_untrusted) field. */
SEC("tc")
int xchg_unreferenced(struct __sk_buff *skb)
{
	int k = 0;
	struct map_value *v = bpf_map_lookup_elem(&stash_array, &k);

	if (!v)
		return 0;
	bpf_kptr_xchg(&v->peek, NULL);
	return 0;
}

/* Rejected: an object of another type into the field. */
SEC("tc")
int xchg_wrong_type(struct __sk_buff *skb)
{
	int k = 0;
	struct map_value *v = bpf_map_lookup_elem(&stash_array, &k);
	struct obj_counted *c;

	if (!v)
		return 0;
	c = bpf_obj_new(typeof(*c));
	if (!c)
		return 0;
	c = bpf_kptr_xchg(&v->node, c);
	if (c)
		bpf_obj_drop(c);
	return 0;
}

/* Rejected: a read past the end of the object. */
SEC("tc")
int read_past_object(struct __sk_buff *skb)
{
	struct obj_node *n = bpf_obj_new(typeof(*n));
	long v;

	if (!n)
		return 0;
	v = ((volatile long *)n)[2];
	bpf_obj_drop(n);
	return v;
}

/* Rejected: the refcount is the kernel's, not the program's. */
SEC("tc")
int touch_refcount(struct __sk_buff *skb)
{
	struct obj_counted *c = bpf_obj_new(typeof(*c));
	int v;

	if (!c)
		return 0;
	v = *(volatile int *)&c->ref;
	bpf_obj_drop(c);
	return v;
}

/* Rejected: bpf_refcount_acquire of an object without a bpf_refcount. */
SEC("tc")
int acquire_uncounted(struct __sk_buff *skb)
{
	struct obj_node *n = bpf_obj_new(typeof(*n));
	struct obj_node *m;

	if (!n)
		return 0;
	m = bpf_refcount_acquire(n);
	if (m)
		bpf_obj_drop(m);
	bpf_obj_drop(n);
	return 0;
}

/* Rejected: a per-CPU object is reached through bpf_this_cpu_ptr only. */
SEC("tc")
int percpu_direct(struct __sk_buff *skb)
{
	struct obj_pcpu __percpu_kptr *p = bpf_percpu_obj_new(struct obj_pcpu);
	long v;

	if (!p)
		return 0;
	v = ((struct obj_pcpu *)p)->hits;
	bpf_percpu_obj_drop(p);
	return v;
}

/* Rejected: dropped twice. */
SEC("tc")
int drop_twice(struct __sk_buff *skb)
{
	struct obj_node *n = bpf_obj_new(typeof(*n));

	if (!n)
		return 0;
	bpf_obj_drop(n);
	bpf_obj_drop(n);
	return 0;
}

/* Rejected: bpf_obj_drop of a per-CPU object. */
SEC("tc")
int drop_percpu_with_obj_drop(struct __sk_buff *skb)
{
	struct obj_pcpu __percpu_kptr *p = bpf_percpu_obj_new(struct obj_pcpu);

	if (!p)
		return 0;
	bpf_obj_drop(p);
	return 0;
}

struct obj_pcpu_ptr {
	long a;
	long *p;
};

/* Rejected: a per-CPU object holds scalars only. */
SEC("tc")
int percpu_with_pointer(struct __sk_buff *skb)
{
	struct obj_pcpu_ptr __percpu_kptr *p = bpf_percpu_obj_new(struct obj_pcpu_ptr);

	if (p)
		bpf_percpu_obj_drop(p);
	return 0;
}

/* Rejected: bpf_obj_new makes structs only. */
SEC("tc")
int new_of_a_long(struct __sk_buff *skb)
{
	long *p = bpf_obj_new(long);

	if (p)
		bpf_obj_drop(p);
	return 0;
}

char _license[] SEC("license") = "GPL";
