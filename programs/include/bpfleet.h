/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Helpers shared by bpfleet's built-in programs. Include after vmlinux.h and bpf_helpers.h. */
#ifndef __BPFLEET_H
#define __BPFLEET_H

/*
 * Log2 histogram slot, upper bound inclusive (see docs/manifest.md, "Histograms"):
 *   slot 0 holds 0; slot s >= 1 holds (2^(s-2), 2^(s-1)].
 * That is exactly a Prometheus `le` bucket and an OpenTelemetry exponential bucket at
 * scale 0, so exporting is lossless. Values beyond the last slot land in the last slot.
 */
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

#endif /* __BPFLEET_H */
