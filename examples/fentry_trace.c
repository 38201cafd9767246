// SPDX-License-Identifier: GPL-2.0
/* BTF-attached tracing: fentry, fexit, fmod_ret and an LSM hook.
 *
 * Each program names the kernel function it attaches to in its section; the
 * loader finds the function's id in the kernel BTF (attach_btf_id), and the
 * verifier types the arguments from the function's prototype: integers are
 * u64 slots, a pointer to a struct can be read through (PTR_TO_BTF_ID).
 *
 * The functions are the kernel's own test functions (net/bpf/test_run.c) and
 * the BPF LSM's file_open hook. From Python (pyebpf), attach the programs and
 * call the function: rt.kernel_call("bpf_fentry_test1", 41) runs entry1, the
 * function (a + 1), then exit1; BPF_PROG_TEST_RUN of a fentry/fexit program
 * calls bpf_fentry_test1..9 as the kernel does. The tp_btf program runs when
 * the task_newtask tracepoint fires (fire_raw_tracepoint; on a kernel: a fork).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define __core __attribute__((preserve_access_index))
#define EPERM 1
#define O_WRONLY 1

struct bpf_fentry_test_t {
	struct bpf_fentry_test_t *a;
} __core;

struct file {
	unsigned int f_flags;
} __core;

struct task_struct {
	int pid;
} __core;

__u64 entry_a;      /* bpf_fentry_test1's argument, seen on entry */
__u64 exit_a;       /* ... and on exit, with the return value */
__u64 exit_ret;
__u64 test8_a;      /* arg->a of bpf_fentry_test8, read through the pointer */
__u64 calls;        /* every program bumps this: the order they ran in */
__u64 entry_seq, exit_seq;
int modret_value;   /* what fmod_ret makes bpf_modify_return_test return (0: no change) */
int modret_seen_ret;
int fexit_modret_ret;
int deny_writes;    /* the LSM program refuses opens for writing when set */
__u64 denied;
__u32 parent_tgid; /* tp_btf: only new tasks of this process are recorded */
__u64 newtasks;
__u64 child_pid, child_flags;

SEC("fentry/bpf_fentry_test1")
int BPF_PROG(entry1, int a)
{
	entry_a = a;
	entry_seq = ++calls;
	return 0;
}

SEC("fexit/bpf_fentry_test1")
int BPF_PROG(exit1, int a, int ret)
{
	exit_a = a;
	exit_ret = ret;
	exit_seq = ++calls;
	return 0;
}

SEC("fentry/bpf_fentry_test8")
int BPF_PROG(entry8, struct bpf_fentry_test_t *arg)
{
	test8_a = (__u64)arg->a;
	return 0;
}

SEC("fmod_ret/bpf_modify_return_test")
int BPF_PROG(modret, int a, int *b, int ret)
{
	modret_seen_ret = ret;
	return modret_value;
}

SEC("fexit/bpf_modify_return_test")
int BPF_PROG(modret_exit, int a, int *b, int ret)
{
	fexit_modret_ret = ret;
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(file_open, struct file *file, int ret)
{
	if (ret)
		return ret;	/* an earlier program already said no */
	if (deny_writes && (file->f_flags & O_WRONLY)) {
		denied++;
		return -EPERM;
	}
	return 0;
}

/* A BTF raw tracepoint: the arguments are typed (and trusted) as in TP_PROTO. */
SEC("tp_btf/task_newtask")
int BPF_PROG(newtask, struct task_struct *task, __u64 clone_flags)
{
	if ((bpf_get_current_pid_tgid() >> 32) != parent_tgid)
		return 0;
	newtasks++;
	child_pid = task->pid;
	child_flags = clone_flags;
	return 0;
}

char _license[] SEC("license") = "GPL";
