// SPDX-License-Identifier: GPL-2.0
/*
 * Scrape benchmark fixture: one hash map of (comm, pid) -> u64 counter.
 * bench/bench_scrape.py fills the map from user space with
 * bpf_map_update_batch; the program only exists so the object is a normal
 * bpfleet program. It would count execs by (comm, pid), but only with the
 * count_execs knob on: the benchmark leaves it off so that execs elsewhere on
 * the machine don't add series mid-run (the verifier drops the dead branch).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"
#include "benchmap.h"

const volatile bool count_execs = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BENCHMAP_MAX_ENTRIES);
	__type(key, struct bench_key);
	__type(value, __u64);
} bench_counts SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int bench_exec(void *ctx)
{
	struct bench_key key;

	if (!count_execs)
		return 0;
	__builtin_memset(&key, 0, sizeof(key));
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	key.pid = bpf_get_current_pid_tgid() >> 32;
	bpfleet_map_increment(&bench_counts, &key, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
