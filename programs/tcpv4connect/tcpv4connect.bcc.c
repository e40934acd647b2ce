// SPDX-License-Identifier: GPL-2.0
/*
 * tcpv4connect, from the seed talk's bcc example (bcc's examples/tracing/tcpv4connect.py), as a
 * bcc-source program: the kprobe on tcp_v4_connect stashes the socket by thread, the kretprobe
 * reads the destination once the connect is sent. Instead of bpf_trace_printk lines it counts
 * connects by destination address and port in a table, exported like any CO-RE map.
 */
#include <uapi/linux/ptrace.h>
#include <net/sock.h>
#include <bcc/proto.h>

struct conn_key {
	u32 daddr;	/* network byte order */
	u16 dport;	/* host byte order */
};

BPF_HASH(currsock, u32, struct sock *, 10240);
BPF_HASH(connects, struct conn_key, u64, 4096);

int trace_connect_entry(struct pt_regs *ctx, struct sock *sk)
{
	u32 tid = bpf_get_current_pid_tgid();

	currsock.update(&tid, &sk);
	return 0;
}

int trace_connect_return(struct pt_regs *ctx)
{
	int ret = PT_REGS_RC(ctx);
	u32 tid = bpf_get_current_pid_tgid();
	struct conn_key key = {};
	struct sock **skpp, *skp;
	u16 dport = 0;

	skpp = currsock.lookup(&tid);
	if (skpp == 0)
		return 0;	/* missed entry */
	if (ret != 0) {		/* failed to send the SYN */
		currsock.delete(&tid);
		return 0;
	}
	skp = *skpp;
	bpf_probe_read_kernel(&key.daddr, sizeof(key.daddr), &skp->__sk_common.skc_daddr);
	bpf_probe_read_kernel(&dport, sizeof(dport), &skp->__sk_common.skc_dport);
	key.dport = ntohs(dport);
	connects.increment(key);
	currsock.delete(&tid);
	return 0;
}
