// SPDX-License-Identifier: GPL-2.0
/*
 * Test program for the OTLP tests (tests/otlp): what one process (the knob target_tgid) does,
 * so that a test can stop that process and have every value of this program hold still.
 *   otlpt_calls   syscalls by id (per-CPU hash: the CPUs are added up)
 *   otlpt_writes  write() sizes by fd: 66 log2 slots (exact exponential), a sum, 8 linear slots
 *   otlpt_last    the latest write() size (a global: a gauge)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfleet.h"

#define OTLPT_SLOTS	66	/* any u64 fits: no overflow slot */
#define OTLPT_LINEAR	8	/* [0, 64), [64, 128), ... the last one holds the rest */
#define OTLPT_FDS	64
#define SYS_WRITE	1	/* x86_64 */

const volatile __u32 target_tgid = 0;

struct otlpt_sizes {
	__u64 slots[OTLPT_SLOTS];
	__u64 sum;
	__u64 linear[OTLPT_LINEAR];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} otlpt_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OTLPT_FDS);
	__type(key, __u32);
	__type(value, struct otlpt_sizes);
} otlpt_writes SEC(".maps");

__u64 otlpt_last = 0;

SEC("raw_tp/sys_enter")
int otlpt_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 id = (__u32)ctx->args[1], fd, slot, lin;
	struct otlpt_sizes *s;
	struct pt_regs *regs;
	__u64 n;

	BPFLEET_GATE();

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	bpfleet_map_increment(&otlpt_calls, &id, 1);
	if (id != SYS_WRITE)
		return 0;
	regs = (struct pt_regs *)ctx->args[0];
	fd = (__u32)PT_REGS_PARM1_CORE_SYSCALL(regs);
	n = PT_REGS_PARM3_CORE_SYSCALL(regs);
	s = bpf_map_lookup_elem(&otlpt_writes, &fd);
	if (!s)
		return 0;
	slot = bpfleet_log2_slot(n, OTLPT_SLOTS);
	if (slot >= OTLPT_SLOTS)
		return 0;
	s->slots[slot] += 1;
	s->sum += n;
	lin = n / 64 < OTLPT_LINEAR ? n / 64 : OTLPT_LINEAR - 1;
	if (lin >= OTLPT_LINEAR)
		return 0;
	s->linear[lin] += 1;
	otlpt_last = n;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
