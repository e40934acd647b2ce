// SPDX-License-Identifier: GPL-2.0
/*
 * TCP state transitions, connections by direction and port, and
 * retransmits, from the stable sock/inet_sock_set_state and
 * tcp/tcp_retransmit_skb tracepoints. The tracepoints already carry ports
 * and protocol, so no socket is read.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"
#include "tcp.h"

/* Per CPU: on a busy server every connection makes several transitions. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);	/* at most 14 x 14 state pairs */
	__type(key, struct tcp_transition_key);
	__type(value, __u64);
} tcp_transitions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct tcp_conn_key);
	__type(value, __u64);
} tcp_conns SEC(".maps");

/* Retransmits are rare enough for one shared counter. */
__u64 tcp_retransmits = 0;

static __always_inline void count_percpu(void *map, const void *key)
{
	__u64 one = 1, *count;

	/* Per-CPU value and the program never nests on one CPU: a plain add is safe. */
	count = bpf_map_lookup_elem(map, key);
	if (count) {
		*count += 1;
		return;
	}
	/* Another CPU may have created the entry meanwhile; then count into it. */
	if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST)) {
		count = bpf_map_lookup_elem(map, key);
		if (count)
			*count += 1;
	}
}

SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct tcp_transition_key tkey = {};
	struct tcp_conn_key ckey;
	int oldstate, newstate;

	BPFLEET_GATE();

	/* The tracepoint also fires for SCTP, MPTCP and others. */
	if (ctx->protocol != IPPROTO_TCP)
		return 0;

	oldstate = ctx->oldstate;
	newstate = ctx->newstate;
	tkey.old_state = oldstate;
	tkey.new_state = newstate;
	count_percpu(&tcp_transitions, &tkey);

	/* The key has a padding byte: zero it all so equal keys hash equally. */
	__builtin_memset(&ckey, 0, sizeof(ckey));
	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		ckey.port = ctx->dport;
		ckey.direction = TCP_DIRECTION_ACTIVE;
	} else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		ckey.port = ctx->sport;
		ckey.direction = TCP_DIRECTION_PASSIVE;
	} else {
		return 0;
	}
	count_percpu(&tcp_conns, &ckey);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit_skb(void *ctx)
{
	BPFLEET_GATE();
	__sync_fetch_and_add(&tcp_retransmits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
