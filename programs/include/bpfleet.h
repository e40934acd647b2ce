/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Helpers shared by bpfleet's built-in programs. Include after vmlinux.h and bpf_helpers.h. */
#ifndef __BPFLEET_H
#define __BPFLEET_H

/*
 * Log2 histogram slot, upper bound inclusive (see docs/manifest.md, "Histograms"):
 *   slot 0 holds 0; slot s >= 1 holds (2^(s-2), 2^(s-1)].
 * That is exactly a Prometheus `le` bucket and, with a power-of-two scale and enough slots
 * (BPFLEET_LOG2_SLOTS), a native / OpenTelemetry exponential bucket: see docs/histograms.md.
 * Values beyond the last slot land in the last slot.
 */
/* Enough slots for any u64 (u64 max lands in slot 65): no slot is "everything larger". */
#define BPFLEET_LOG2_SLOTS	66

static __always_inline __u32 bpfleet_log2_slot(__u64 v, __u32 max_slots)
{
	__u32 s;

	if (v == 0)
		return 0;
	v -= 1;
	s = 1;
	/* bit length of v, branch-light and verifier-friendly (no loops) */
	if (v >> 32) { s += 32; v >>= 32; }
	if (v >> 16) { s += 16; v >>= 16; }
	if (v >> 8)  { s += 8;  v >>= 8; }
	if (v >> 4)  { s += 4;  v >>= 4; }
	if (v >> 2)  { s += 2;  v >>= 2; }
	if (v >> 1)  { s += 1;  v >>= 1; }
	s += v;
	return s < max_slots ? s : max_slots - 1;
}

/*
 * Durations for log2 histograms, in units of 2^-20 s (about 0.95 µs), rounded up.
 * With `scale = 9.5367431640625e-07` (2^-20) in the manifest, every slot boundary is a power of
 * two in seconds, so the Prometheus native and OpenTelemetry exponential histograms of the
 * metric are exact (docs/histograms.md); microseconds (scale 1e-6) would not be. Rounding up
 * keeps `le` honest: a duration lands in the first bucket whose bound is at least as large.
 * Beyond 2^44 ns (4.9 hours) the shift would overflow; such durations go to the top slot.
 */
#define BPFLEET_UNITS_PER_SECOND	(1ULL << 20)

static __always_inline __u64 bpfleet_ns_to_units(__u64 ns)
{
	if (ns >= (1ULL << 44))
		return ~0ULL;
	return ((ns << 20) + 999999999ULL) / 1000000000ULL;
}

/*
 * Exactly-once upgrades. During an upgrade the exporter attaches the new version while the old
 * one still runs; both would count the same events into the maps they share. The gate is a
 * one-slot map shared by every version of a program, holding the generation allowed to count;
 * each loaded version knows its own generation (set by the exporter before load). The exporter
 * attaches the new version, then flips the gate to it in one map write, then detaches the old:
 * every event is counted by exactly one version. Start every program with BPFLEET_GATE().
 * Outside bpfleet (bpftool, tests) the gate reads 0 and generation is 0, so programs count.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bpfleet_gate SEC(".maps");

const volatile __u64 bpfleet_generation = 0;

static __always_inline int bpfleet_active(void)
{
	__u32 zero = 0;
	__u64 *allowed = bpf_map_lookup_elem(&bpfleet_gate, &zero);

	return !allowed || *allowed == bpfleet_generation;
}

#define BPFLEET_GATE()                  \
	do {                            \
		if (!bpfleet_active())  \
			return 0;       \
	} while (0)

/*
 * Counting into a hash map (docs/write-a-program.md, "Counting").
 *
 * The first event of a key inserts it, and two CPUs can find the key missing at the same time.
 * Only one BPF_NOEXIST insert wins; the other gets -EEXIST and its event must go into the entry
 * the winner made. Dropping it there (or inserting with BPF_ANY, which overwrites the winner's
 * value) loses a count on every such race: a fresh key is hit at once on several CPUs exactly
 * when something new starts. Values are added to atomically: a shared value is written by every
 * CPU, and even a per-CPU value is shared by every program of the object on that CPU, where one
 * can interrupt another: a softirq in the middle of a task's event, or, since trampoline
 * programs (fentry, lsm) run with only migration disabled, a task that preempts one.
 * After libbpf-tools' bpf_map_lookup_or_try_init and ebpf_exporter's increment_map.
 */
#define BPFLEET_ENOENT	2	/* errno values: vmlinux.h has types only */
#define BPFLEET_EEXIST	17

/*
 * The value of `key`, created from `init` if missing. -> NULL only when the map refuses a new
 * key (full: -E2BIG; or busy, when this CPU interrupted an update of the same bucket).
 */
static __always_inline void *bpfleet_map_lookup_or_try_init(void *map, const void *key,
							     const void *init)
{
	void *value = bpf_map_lookup_elem(map, key);
	long err;

	if (value)
		return value;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -BPFLEET_EEXIST)
		return 0;
	return bpf_map_lookup_elem(map, key);
}

/*
 * Add `n` to the __u64 count of `key` in a hash or per-CPU hash map (for a per-CPU map: to this
 * CPU's count). -> 0, or < 0 when the event was not counted: the insert's error (-E2BIG: the
 * map is full), or -ENOENT when user space deleted the key in between. A program that wants
 * to export how many events a full map cost counts the failures in a global.
 */
static __always_inline long bpfleet_map_increment(void *map, const void *key, __u64 n)
{
	__u64 *count = bpf_map_lookup_elem(map, key);
	long err;

	if (!count) {
		/* a per-CPU map gets n on this CPU and 0 on the others */
		err = bpf_map_update_elem(map, key, &n, BPF_NOEXIST);
		if (err != -BPFLEET_EEXIST)
			return err;
		/* another CPU inserted it first: count into its entry */
		count = bpf_map_lookup_elem(map, key);
		if (!count)
			return -BPFLEET_ENOENT;
	}
	__sync_fetch_and_add(count, n);
	return 0;
}

#endif /* __BPFLEET_H */
