// __ksym externs: a kfunc (strong) and a kernel variable (weak).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern const int bpf_prog_active __ksym __weak;
extern void bpf_rcu_read_lock(void) __ksym;

SEC("tc")
int uses_weak_var(struct __sk_buff *skb)
{
	return &bpf_prog_active != 0;
}

SEC("tc")
int uses_kfunc(struct __sk_buff *skb)
{
	bpf_rcu_read_lock();
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
