// SPDX-License-Identifier: GPL-2.0
/*
 * Scheduler run-queue latency: time from a task becoming runnable (woken,
 * newly created, or preempted while still runnable) to it getting a CPU.
 * After libbpf-tools' runqlat, as a single log2 histogram in units of 2^-20 s (bpfleet_ns_to_units).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "bpfleet.h"
#include "runqlat.h"

#define TASK_RUNNING	0

/*
 * Keyed by thread id. An entry whose task exits before running again stays
 * until that tid is reused; the map is sized well above the usual number of
 * runnable-but-waiting threads.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

/*
 * sched_switch is about the hottest tracepoint there is: a per-CPU array
 * lookup is inlined by the verifier and needs no atomics.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct runq_hist);
} runq_hist SEC(".maps");

static __always_inline void trace_enqueue(__u32 pid)
{
	__u64 ts;

	/* The idle task is never queued. */
	if (!pid)
		return;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &pid, &ts, BPF_ANY);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
	BPFLEET_GATE();
	trace_enqueue(p->pid);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
	BPFLEET_GATE();
	trace_enqueue(p->pid);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct runq_hist *hist;
	__u32 pid, zero = 0;
	__u64 *tsp;
	__s64 delta;
	__u64 delta_units;

	BPFLEET_GATE();

	/* Preempted, not sleeping: it goes straight back on the run queue. */
	if (prev->__state == TASK_RUNNING)
		trace_enqueue(prev->pid);

	pid = next->pid;
	tsp = bpf_map_lookup_elem(&start, &pid);
	if (!tsp)
		return 0;
	delta = (__s64)(bpf_ktime_get_ns() - *tsp);
	bpf_map_delete_elem(&start, &pid);
	if (delta < 0)
		return 0;

	/* Only this program writes the histogram, under the rq lock: plain adds are safe. */
	hist = bpf_map_lookup_elem(&runq_hist, &zero);
	if (!hist)
		return 0;
	delta_units = bpfleet_ns_to_units((__u64)delta);
	hist->slots[bpfleet_log2_slot(delta_units, RUNQLAT_SLOTS)] += 1;
	hist->sum += delta_units;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
