// SPDX-License-Identifier: GPL-2.0
/* BPF iterators: a program run once per kernel object, writing a text file.
 *
 * Attach with BPF_LINK_CREATE, open a session with BPF_ITER_CREATE, and read
 * the fd: each read() runs the program over the next objects, and what it
 * printed with BPF_SEQ_PRINTF / bpf_seq_write is the file's content. After the
 * last object the program runs once more with a NULL object (here: a footer).
 *
 * The kernel structs are declared with only the fields used; the CO-RE
 * relocations (preserve_access_index) find them in the kernel's BTF at load
 * time, as a vmlinux.h-based program would.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __core __attribute__((preserve_access_index))

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
} __core;

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
} __core;

struct bpf_map {
	__u32 id;
} __core;

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __core;

struct bpf_iter__bpf_map_elem {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
	void *key;
	void *value;
} __core;

/* One line per task: "pid tgid comm", under a header, then a footer. */
SEC("iter/task")
int dump_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;

	if (!task) {
		BPF_SEQ_PRINTF(seq, "%llu tasks\n", ctx->meta->seq_num + 1);
		return 0;
	}
	if (ctx->meta->seq_num == 0)
		BPF_SEQ_PRINTF(seq, "  PID  TGID COMM\n");
	BPF_SEQ_PRINTF(seq, "%5d %5d %s\n", task->pid, task->tgid, task->comm);
	return 0;
}

/* The elements of a hash map of u32 -> u64, as "key: value", doubling each value
 * in place (the value pointer is writable); the keys also as raw bytes. */
SEC("iter/bpf_map_elem")
int dump_counts(struct bpf_iter__bpf_map_elem *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	__u32 *key = ctx->key;
	__u64 *value = ctx->value;

	if (!key || !value)
		return 0;
	BPF_SEQ_PRINTF(seq, "%u: %llu\n", *key, *value);
	*value *= 2;
	bpf_seq_write(seq, key, sizeof(*key));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
