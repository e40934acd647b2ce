// SPDX-License-Identifier: GPL-2.0
/*
 * Design experiment for programs/runqlat, for bench/bench_kernel_cost.py
 * --only runqlat-variants: the same histogram, but the enqueue timestamp
 * lives in task local storage instead of a hash keyed by pid. No hash
 * update/lookup/delete (and no bucket lock) per wakeup and switch, and no
 * stale entries when a task exits. Attached next to the real runqlat so
 * both see the same events. Not shipped.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "bpfleet.h"

#define TASK_RUNNING	0
#define SLOTS		27

struct hist {
	__u64 slots[SLOTS];
	__u64 sum;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} start_ts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} v_hist SEC(".maps");

static __always_inline void enqueue(struct task_struct *p, __u64 now)
{
	__u64 *ts;

	if (!p->pid)
		return;
	ts = bpf_task_storage_get(&start_ts, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ts)
		*ts = now;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(v_wakeup, struct task_struct *p)
{
	enqueue(p, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(v_wakeup_new, struct task_struct *p)
{
	enqueue(p, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(v_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns(), *ts, delta_us;
	struct hist *h;
	__u32 zero = 0;
	__s64 delta;

	if (prev->__state == TASK_RUNNING)
		enqueue(prev, now);
	ts = bpf_task_storage_get(&start_ts, next, 0, 0);
	if (!ts || !*ts)
		return 0;
	delta = (__s64)(now - *ts);
	*ts = 0;
	if (delta < 0)
		return 0;
	h = bpf_map_lookup_elem(&v_hist, &zero);
	if (!h)
		return 0;
	delta_us = (__u64)delta / 1000;
	h->slots[bpfleet_log2_slot(delta_us, SLOTS)] += 1;
	h->sum += delta_us;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
