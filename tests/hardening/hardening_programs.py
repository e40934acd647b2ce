"""Test programs for the hardening tests: deliberately expensive ones (the circuit breaker), one
with a sampling knob (degrading), one with too many keys for its series limit and a map that
fills up (cardinality, failed inserts). Written into a directory, built by harness.build()."""
from __future__ import annotations

from pathlib import Path

from harness import TRACKER, tiny_program, write_program

# A bounded loop the verifier walks through; `volatile` keeps clang from folding it away.
# Around 1-3 µs per run on the test VM: every syscall on the machine pays it while attached.
COSTLY_LOOP = """
	{
		volatile __u64 acc = 0;
		for (int i = 0; i < %d; i++)
			acc += i;
	}
"""

BUDGET = """
[budget]
ns_per_event = {ns}
"""


def costly(parent: Path, name: str = "costly", iterations: int = 2000, ns_per_event: int = 100) -> Path:
    """tiny_program on raw_tp/sys_enter with an expensive loop and a budget it can't keep."""
    d = tiny_program(parent, name, extra=COSTLY_LOOP % iterations)
    m = d / "manifest.toml"
    m.write_text(m.read_text() + BUDGET.format(ns=ns_per_event))
    return d


SAMPLED_SOURCE = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Do the expensive part for one event in sample_every (the degrade knob); count every event. */
const volatile __u32 sample_every = 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sampled_counts SEC(".maps");

SEC("raw_tp/sys_enter")
int sampled_prog(void *ctx)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&sampled_counts, &zero);

	if (count)
		__sync_fetch_and_add(count, 1);
	if (sample_every > 1 && bpf_get_prandom_u32() % sample_every)
		return 0;
	{
		volatile __u64 acc = 0;
		for (int i = 0; i < ITERATIONS; i++)
			acc += i;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

SAMPLED_MANIFEST = """name = "sampled"
version = "1.0.0"
description = "a costly program that can be sampled down"
license = "GPL-2.0"

[requires]
program_types = ["raw_tracepoint"]

[knobs.sample_every]
default = 1
description = "do the costly part for one event in sample_every"

[[metrics]]
name = "sampled_events_total"
type = "counter"
help = "every event, sampled or not"
map = "sampled_counts"

[budget]
ns_per_event = %(ns)d
degrade = { knob = "sample_every", values = [2, 1000] }
"""


def sampled(parent: Path, iterations: int = 8000, ns_per_event: int = 1000) -> Path:
    TRACKER.note_names("sampled_prog", "sampled_counts")
    return write_program(parent, "sampled", SAMPLED_SOURCE.replace("ITERATIONS", str(iterations)),
                         SAMPLED_MANIFEST % {"ns": ns_per_event})


MANYKEYS_SOURCE = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* One entry per syscall number, in a map too small for them all: it fills up, and the
   failed inserts are counted (the pattern docs/manifest.md describes). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} manykeys_counts SEC(".maps");

__u64 manykeys_failed_inserts = 0;

SEC("raw_tp/sys_enter")
int manykeys_prog(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 id = (__u32)ctx->args[1];
	__u64 one = 1, *count;

	count = bpf_map_lookup_elem(&manykeys_counts, &id);
	if (count)
		__sync_fetch_and_add(count, 1);
	else if (bpf_map_update_elem(&manykeys_counts, &id, &one, BPF_NOEXIST))
		__sync_fetch_and_add(&manykeys_failed_inserts, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

MANYKEYS_MANIFEST = """name = "manykeys"
version = "1.0.0"
description = "more keys than its series limit, and a map that fills up"
license = "GPL-2.0"

[requires]
program_types = ["raw_tracepoint"]

[[metrics]]
name = "manykeys_calls_total"
type = "counter"
help = "syscalls by number, at most 5 series"
map = "manykeys_counts"
labels.key = { name = "syscall", decoder = "syscall" }
max_series = 5

[[metrics]]
name = "manykeys_all_calls_total"
type = "counter"
help = "the same map, under the default series limit"
map = "manykeys_counts"
labels.key = { name = "syscall", decoder = "syscall" }

[[metrics]]
name = "manykeys_map_full_total"
type = "counter"
help = "events not counted because manykeys_counts was full"
global = "manykeys_failed_inserts"
"""


def manykeys(parent: Path) -> Path:
    TRACKER.note_names("manykeys_prog", "manykeys_counts")
    return write_program(parent, "manykeys", MANYKEYS_SOURCE, MANYKEYS_MANIFEST)


FLOOD_SOURCE = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* RECORDS_PER_CALL ring buffer records per syscall of processes named FLOOD_COMM (the test's
   flooder, which makes syscalls as fast as it can), into a small ring: far more records than a
   consumer in Python can take. Failed reserves are counted. */
struct flood_event {
	__u32 pid;
	__u32 nr;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} flood_events SEC(".maps");

const struct flood_event *const flood_event_btf = 0;
__u64 flood_dropped = 0;

SEC("raw_tp/sys_enter")
int flood_prog(struct bpf_raw_tracepoint_args *ctx)
{
	const char want[] = FLOOD_COMM;
	struct flood_event *e;
	char comm[16];

	bpf_get_current_comm(comm, sizeof(comm));
	for (int i = 0; i < sizeof(want); i++)
		if (comm[i] != want[i])
			return 0;
	for (int n = 0; n < RECORDS_PER_CALL; n++) {
		e = bpf_ringbuf_reserve(&flood_events, sizeof(*e), 0);
		if (!e) {
			__sync_fetch_and_add(&flood_dropped, 1);
			continue;
		}
		e->pid = bpf_get_current_pid_tgid() >> 32;
		e->nr = (__u32)ctx->args[1];
		__builtin_memcpy(e->comm, comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

FLOOD_MANIFEST = """name = "flood"
version = "1.0.0"
description = "a ring buffer record per syscall of one process: a flood"
license = "GPL-2.0"

[requires]
program_types = ["raw_tracepoint"]

[[events]]
map = "flood_events"
drops = "flood_dropped"
type = "flood_event"
"""

FLOOD_COMM = "bpfleetflood"


def flood(parent: Path, records_per_call: int = 16) -> Path:
    TRACKER.note_names("flood_prog", "flood_events")
    source = FLOOD_SOURCE.replace("FLOOD_COMM", f'"{FLOOD_COMM}"')
    return write_program(parent, "flood", source.replace("RECORDS_PER_CALL", str(records_per_call)),
                         FLOOD_MANIFEST)


XDP_SOURCE = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Counts packets: an XDP program, which needs an interface to attach to. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} xdpcount_counts SEC(".maps");

SEC("xdp")
int xdpcount_prog(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&xdpcount_counts, &zero);

	if (count)
		__sync_fetch_and_add(count, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""

XDP_MANIFEST = """name = "xdpcount"
version = "1.0.0"
description = "an XDP program: needs CAP_NET_ADMIN and an interface"
license = "GPL-2.0"

[requires]
program_types = ["xdp"]

[[metrics]]
name = "xdpcount_packets_total"
type = "counter"
help = "packets seen"
map = "xdpcount_counts"
"""


def xdpcount(parent: Path) -> Path:
    TRACKER.note_names("xdpcount_prog", "xdpcount_counts")
    return write_program(parent, "xdpcount", XDP_SOURCE, XDP_MANIFEST)
