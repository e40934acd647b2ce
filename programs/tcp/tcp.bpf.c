// SPDX-License-Identifier: GPL-2.0
/*
 * TCP state transitions, connections by direction and port, and
 * retransmits. Three attach variants (manifest.toml [[variants]], best
 * first), each counting the same events into the same maps:
 *
 *   fentry      fentry on inet_sk_state_store / inet_sk_set_state (the only
 *               two callers of the inet_sock_set_state tracepoint) and fexit
 *               on __tcp_retransmit_skb: reads only the three socket fields
 *               it needs, and skips the tracepoint's record assembly (both
 *               addresses in v4 and v6 form, ports, family) on every change
 *   kprobe      the same functions through kprobes, for kernels without BPF
 *               trampolines; the socket is read with CO-RE reads
 *   tracepoint  the stable sock/inet_sock_set_state and tcp/tcp_retransmit_skb
 *               tracepoints, which carry ports and protocol: no socket read
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
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

/* sport: the local port, dport: the remote one, both in host byte order. */
static __always_inline int count_transition(int oldstate, int newstate, __u16 sport, __u16 dport)
{
	struct tcp_transition_key tkey = {};
	struct tcp_conn_key ckey;

	tkey.old_state = oldstate;
	tkey.new_state = newstate;
	bpfleet_map_increment(&tcp_transitions, &tkey, 1);

	/* The key has a padding byte: zero it all so equal keys hash equally. */
	__builtin_memset(&ckey, 0, sizeof(ckey));
	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		ckey.port = dport;
		ckey.direction = TCP_DIRECTION_ACTIVE;
	} else if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		ckey.port = sport;
		ckey.direction = TCP_DIRECTION_PASSIVE;
	} else {
		return 0;
	}
	bpfleet_map_increment(&tcp_conns, &ckey, 1);
	return 0;
}

/* ---- variant "tracepoint" ---- */

SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	BPFLEET_GATE();
	/* The tracepoint also fires for SCTP, MPTCP and others. */
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	return count_transition(ctx->oldstate, ctx->newstate, ctx->sport, ctx->dport);
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit_skb(void *ctx)
{
	BPFLEET_GATE();
	__sync_fetch_and_add(&tcp_retransmits, 1);
	return 0;
}

/* ---- variant "fentry": the state is stored after these run, so sk_state is the old one ---- */

static __always_inline int sock_state_btf(struct sock *sk, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	return count_transition(sk->__sk_common.skc_state, newstate, sk->__sk_common.skc_num,
				bpf_ntohs(sk->__sk_common.skc_dport));
}

SEC("fentry/inet_sk_state_store")
int BPF_PROG(fentry_state_store, struct sock *sk, int newstate)
{
	BPFLEET_GATE();
	return sock_state_btf(sk, newstate);
}

SEC("fentry/inet_sk_set_state")
int BPF_PROG(fentry_set_state, struct sock *sk, int state)
{
	BPFLEET_GATE();
	return sock_state_btf(sk, state);
}

/* The tracepoint fires inside __tcp_retransmit_skb when it returns 0. */
SEC("fexit/__tcp_retransmit_skb")
int BPF_PROG(fexit_retransmit, struct sock *sk, struct sk_buff *skb, int segs, int ret)
{
	BPFLEET_GATE();
	if (ret == 0)
		__sync_fetch_and_add(&tcp_retransmits, 1);
	return 0;
}

/* ---- variant "kprobe" ---- */

static __always_inline int sock_state_core(struct sock *sk, int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	return count_transition(BPF_CORE_READ(sk, __sk_common.skc_state), newstate,
				BPF_CORE_READ(sk, __sk_common.skc_num),
				bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)));
}

SEC("kprobe/inet_sk_state_store")
int BPF_KPROBE(kprobe_state_store, struct sock *sk, int newstate)
{
	BPFLEET_GATE();
	return sock_state_core(sk, newstate);
}

SEC("kprobe/inet_sk_set_state")
int BPF_KPROBE(kprobe_set_state, struct sock *sk, int state)
{
	BPFLEET_GATE();
	return sock_state_core(sk, state);
}

SEC("kretprobe/__tcp_retransmit_skb")
int BPF_KRETPROBE(kretprobe_retransmit, int ret)
{
	BPFLEET_GATE();
	if (ret == 0)
		__sync_fetch_and_add(&tcp_retransmits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
