// SPDX-License-Identifier: GPL-2.0
/* Local TCP shortcut with a socket hash: the classic sockmap pattern.
 *
 * A sock_ops program (attached to a cgroup) puts every established TCP
 * socket into the SOCKHASH `socks`, keyed by its (local port, remote port).
 * An sk_msg program (attached to `socks` with BPF_SK_MSG_VERDICT) redirects
 * each message sent on such a socket straight into the ingress queue of the
 * socket at the other end of the connection, the one keyed by the swapped
 * ports, skipping the TCP stack; `redirected` counts the messages it sent
 * that way. An sk_skb stream verdict (BPF_SK_SKB_STREAM_VERDICT) drops
 * received messages that start with '!' and counts them in `dropped`.
 *
 * Ports: local_port is in host order; remote_port holds the network-order
 * port in its upper 16 bits (so bpf_ntohl() gives the host-order port). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct sock_key {
	__u32 local_port;
	__u32 remote_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 64);
	__type(key, struct sock_key);
	__type(value, __u64);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#define REDIRECTED 0
#define DROPPED 1

static void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &which);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("sockops")
int add_established(struct bpf_sock_ops *skops)
{
	struct sock_key key = {};

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		key.local_port = skops->local_port;
		key.remote_port = bpf_ntohl(skops->remote_port);
		bpf_sock_hash_update(skops, &socks, &key, BPF_ANY);
		break;
	}
	return 1;
}

SEC("sk_msg")
int shortcut(struct sk_msg_md *msg)
{
	struct sock_key peer = {
		.local_port = bpf_ntohl(msg->remote_port),
		.remote_port = msg->local_port,
	};
	long verdict = bpf_msg_redirect_hash(msg, &socks, &peer, BPF_F_INGRESS);

	if (verdict == SK_PASS)
		count(REDIRECTED);
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int drop_bang(struct __sk_buff *skb)
{
	char first = 0;

	if (bpf_skb_load_bytes(skb, 0, &first, 1) == 0 && first == '!') {
		count(DROPPED);
		return SK_DROP;
	}
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
