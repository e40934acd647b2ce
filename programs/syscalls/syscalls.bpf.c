// SPDX-License-Identifier: GPL-2.0
/*
 * Syscall counts by syscall number, optionally also by command.
 *
 * This runs on every syscall of every task, so the default path is one
 * inlined per-CPU array lookup and a plain increment: no atomics, no
 * hashing, no helper calls. The knobs live in .rodata; once libbpf freezes
 * it the verifier sees their values as constants and removes the disabled
 * branches, so an unused knob costs nothing.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"
#include "syscalls.h"

const volatile bool by_process = false;
const volatile __u32 target_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYSCALLS_MAX_ID);
	__type(key, __u32);
	__type(value, __u64);
} syscall_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct proc_syscall_key);
	__type(value, __u64);
} proc_syscalls SEC(".maps");

static __always_inline void count_by_process(__u32 id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct proc_syscall_key key;

	/*
	 * Two 8-byte loads straight from the task, instead of bpf_get_current_comm's copy: this
	 * runs on every syscall. The key has no padding, so no memset either.
	 */
	__builtin_memcpy(key.comm, task->comm, sizeof(key.comm));
	key.syscall = id;
	bpfleet_map_increment(&proc_syscalls, &key, 1);
}

/*
 * raw_tp rather than the raw_syscalls/sys_enter tracepoint: no perf buffer
 * is filled for us, the arguments are passed as they are. args[1] is the id.
 */
SEC("raw_tp/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	/* Negative ids (-1 for ptrace-skipped syscalls) become huge and miss the array. */
	__u32 id = (__u32)ctx->args[1];
	__u64 *count;

	BPFLEET_GATE();

	if (target_pid && (bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;

	/*
	 * Per-CPU slot; BPF on syscall tracepoints runs with preemption off
	 * (even now that they may fault) and never nests on one CPU, so a plain
	 * add loses nothing.
	 */
	count = bpf_map_lookup_elem(&syscall_counts, &id);
	if (count)
		*count += 1;

	if (by_process && id < SYSCALLS_MAX_ID)
		count_by_process(id);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
