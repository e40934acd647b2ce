// SPDX-License-Identifier: GPL-2.0
/*
 * Design experiments for the syscalls program's by_process path, for
 * bench/bench_kernel_cost.py --only variants. Every program here attaches to
 * raw_tp/sys_enter and does one variant of "count this syscall by process";
 * bpf_stats then gives each one's ns/event on the same events. Not shipped.
 *
 *   v_helper_comm   what programs/syscalls does with by_process on: per-CPU
 *                   array count, then bpf_get_current_comm + per-CPU hash
 *                   keyed by {comm, syscall}
 *   v_btf_comm      same, but comm read straight from the task_struct
 *                   (bpf_get_current_task_btf, two 8-byte loads) instead of
 *                   the bpf_get_current_comm helper
 *   v_pid_key       per-CPU hash keyed by {tgid, syscall} (8 bytes, no comm):
 *                   what the hash lookup alone costs with a short key
 *   v_comm_only     bpf_get_current_comm into a stack buffer, nothing else
 *   v_task_slot     no hash on the hot path: a task-local-storage slot
 *                   (assigned once per task from a comm -> slot hash) indexes
 *                   a per-CPU array of [slot][syscall] counters
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"

#define MAX_ID		512
#define SLOTS		64	/* comm slots for v_task_slot; enough for the bench */

struct comm_key {
	char comm[16];
	__u32 syscall;
};

struct pid_key {
	__u32 tgid;
	__u32 syscall;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_ID);
	__type(key, __u32);
	__type(value, __u64);
} by_id SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct comm_key);
	__type(value, __u64);
} by_comm_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct comm_key);
	__type(value, __u64);
} by_comm_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct pid_key);
	__type(value, __u64);
} by_pid SEC(".maps");

/* v_task_slot: comm -> slot (slow path only), task -> slot, [slot][syscall] counters. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLOTS);
	__type(key, char[16]);
	__type(value, __u32);
} comm_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} task_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLOTS * MAX_ID);
	__type(key, __u32);
	__type(value, __u64);
} slot_counts SEC(".maps");

__u32 next_slot = 1;	/* 0 means "no slot yet" */

static __always_inline void count_id(__u32 id)
{
	__u64 *c = bpf_map_lookup_elem(&by_id, &id);

	if (c)
		*c += 1;
}

SEC("raw_tp/sys_enter")
int v_helper_comm(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 id = (__u32)ctx->args[1];
	struct comm_key key;

	count_id(id);
	if (id >= MAX_ID)
		return 0;
	__builtin_memset(&key, 0, sizeof(key));
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	key.syscall = id;
	bpfleet_map_increment(&by_comm_a, &key, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int v_btf_comm(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 id = (__u32)ctx->args[1];
	struct task_struct *task;
	struct comm_key key;

	count_id(id);
	if (id >= MAX_ID)
		return 0;
	task = bpf_get_current_task_btf();
	/* comm is NUL-padded by the kernel (__set_task_comm / strscpy_pad) */
	*(__u64 *)&key.comm[0] = *(__u64 *)&task->comm[0];
	*(__u64 *)&key.comm[8] = *(__u64 *)&task->comm[8];
	key.syscall = id;
	bpfleet_map_increment(&by_comm_b, &key, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int v_pid_key(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 id = (__u32)ctx->args[1];
	struct pid_key key;

	count_id(id);
	if (id >= MAX_ID)
		return 0;
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.syscall = id;
	bpfleet_map_increment(&by_pid, &key, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int v_comm_only(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 id = (__u32)ctx->args[1];
	char comm[16];

	count_id(id);
	bpf_get_current_comm(comm, sizeof(comm));
	return comm[0] == 1;	/* keep it live */
}

SEC("raw_tp/sys_enter")
int v_task_slot(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 id = (__u32)ctx->args[1], *slot, *known, idx, s;
	struct task_struct *task;
	char comm[16];
	__u64 *c;

	count_id(id);
	if (id >= MAX_ID)
		return 0;
	task = bpf_get_current_task_btf();
	slot = bpf_task_storage_get(&task_slot, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!slot)
		return 0;
	if (!*slot) {
		/* Slow path, once per task (a real version would also reset it on exec/rename). */
		bpf_get_current_comm(comm, sizeof(comm));
		known = bpf_map_lookup_elem(&comm_slots, comm);
		if (known) {
			s = *known;
		} else {
			s = __sync_fetch_and_add(&next_slot, 1);
			if (s >= SLOTS)
				return 0;
			bpf_map_update_elem(&comm_slots, comm, &s, BPF_NOEXIST);
		}
		*slot = s;
	}
	idx = *slot * MAX_ID + id;
	c = bpf_map_lookup_elem(&slot_counts, &idx);
	if (c)
		*c += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
