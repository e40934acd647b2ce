// SPDX-License-Identifier: GPL-2.0
/*
 * The racing-insert test's program (tests/counting/test_racing_insert.py).
 *
 * Counts the getppid() calls of the processes in `targets`, into a hash map and into a per-CPU
 * hash map, under a key that changes every RACECOUNT_EVENTS_PER_KEY events: every key is fresh,
 * and its first events come from every CPU running a target at once - the moment a
 * lookup-or-insert can race. The number of keys is bounded by the workload, not by time.
 *
 * Built twice: as is, counting with bpfleet_map_increment(); and as racecount_old.bpf.c, with
 * RACECOUNT_OLD_PATTERN, counting the way the mitigations did before it (lookup; if missing,
 * insert 1 with BPF_NOEXIST and nothing more), each lost insert counted in `lost_*` so the
 * test can show where the counts went.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"

#define SYS_GETPPID			110	/* x86_64 */
#define RACECOUNT_EVENTS_PER_KEY	16
#define RACECOUNT_KEYS			65536	/* room for 1M events */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);		/* tgid */
	__type(value, __u8);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RACECOUNT_KEYS);
	__type(key, __u64);
	__type(value, __u64);
} shared_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, RACECOUNT_KEYS);
	__type(key, __u64);
	__type(value, __u64);
} percpu_counts SEC(".maps");

__u64 events = 0;		/* target getppid() calls seen: the sequence the keys come from */
__u64 contended_shared = 0;	/* helper: events that found their key missing, then not inserted it */
__u64 contended_percpu = 0;
__u64 lost_shared = 0;		/* old pattern: inserts that failed with -EEXIST, their count gone */
__u64 lost_percpu = 0;
__u64 not_counted = 0;		/* any other failure (a full map): the test's sizing is wrong */

#ifdef RACECOUNT_OLD_PATTERN
static __always_inline void count(void *map, const __u64 *key, bool percpu, __u64 *lost)
{
	__u64 one = 1, *count = bpf_map_lookup_elem(map, key);
	long err;

	if (count) {
		if (percpu)
			*count += 1;
		else
			__sync_fetch_and_add(count, 1);
		return;
	}
	err = bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
	if (err == -BPFLEET_EEXIST)
		__sync_fetch_and_add(lost, 1);
	else if (err)
		__sync_fetch_and_add(&not_counted, 1);
}
#else
/* Also counts the events that found their key missing: one per key inserted it, the rest ran
 * while another CPU inserted it - the race the old pattern loses. */
static __always_inline void count(void *map, const __u64 *key, bool percpu, __u64 *contended)
{
	bool missing = !bpf_map_lookup_elem(map, key);
	long err = bpfleet_map_increment(map, key, 1);

	if (missing)
		__sync_fetch_and_add(contended, 1);
	if (err)
		__sync_fetch_and_add(&not_counted, 1);
}
#endif

SEC("raw_tp/sys_enter")
int racecount(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 key;

	if (ctx->args[1] != SYS_GETPPID || !bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	key = __sync_fetch_and_add(&events, 1) / RACECOUNT_EVENTS_PER_KEY;
#ifdef RACECOUNT_OLD_PATTERN
	count(&shared_counts, &key, false, &lost_shared);
	count(&percpu_counts, &key, true, &lost_percpu);
#else
	count(&shared_counts, &key, false, &contended_shared);
	count(&percpu_counts, &key, true, &contended_percpu);
#endif
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
