// SPDX-License-Identifier: GPL-2.0
/*
 * Block I/O latency by disk and operation, as a log2 histogram in
 * units of 2^-20 s (bpfleet_ns_to_units), after libbpf-tools' biolatency.
 *
 * By default the clock starts when the request is issued to the driver, so
 * the histogram is device time. With the `queued` knob it starts when the
 * request enters the I/O scheduler instead.
 *
 * Two attach variants (manifest.toml [[variants]]) for issue and completion:
 * "fentry" on blk_mq_start_request / blk_update_request, the functions that
 * fire the block_rq_issue / block_rq_complete tracepoints, and "tp_btf" on
 * those tracepoints. Insert (queued mode) is the tp_btf program in both.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfleet.h"
#include "biolatency.h"

/* Macros, so not in vmlinux.h. */
#define REQ_OP_BITS	8
#define REQ_OP_MASK	((1U << REQ_OP_BITS) - 1)
#define MINORBITS	20

const volatile bool queued = false;

/*
 * Keyed by request address. Requests live in preallocated tag sets and are
 * reused, so an entry whose completion we never see is overwritten rather
 * than leaked for good.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct request *);
	__type(value, __u64);
} start SEC(".maps");

/*
 * Per CPU because completions can run at millions per second on NVMe.
 * No prealloc: the value is ~550 bytes per CPU and only a few (disk, op)
 * pairs ever exist.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct disk_op);
	__type(value, struct bio_hist);
} bio_hists SEC(".maps");

static __always_inline int trace_rq_start(struct request *rq, bool issue)
{
	__u64 ts = bpf_ktime_get_ns();

	/*
	 * In queued mode issue must keep the time insert recorded. Not every
	 * request is inserted (flushes and requests on queues without a
	 * scheduler go straight to issue), so issue still starts the clock
	 * when there is none yet.
	 */
	bpf_map_update_elem(&start, &rq, &ts, issue && queued ? BPF_NOEXIST : BPF_ANY);
	return 0;
}

SEC("tp_btf/block_rq_insert")
int BPF_PROG(block_rq_insert, struct request *rq)
{
	BPFLEET_GATE();
	if (!queued)
		return 0;
	return trace_rq_start(rq, false);
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(block_rq_issue, struct request *rq)
{
	BPFLEET_GATE();
	return trace_rq_start(rq, true);
}

SEC("fentry/blk_mq_start_request")
int BPF_PROG(fentry_start_request, struct request *rq)
{
	BPFLEET_GATE();
	return trace_rq_start(rq, true);
}

/*
 * An all-zero histogram to create new entries from: at 66 slots it is too big for the 512-byte
 * BPF stack, and .rodata is for knobs only. Nothing ever writes to it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bio_hist);
} empty_hist SEC(".maps");

static __always_inline struct bio_hist *lookup_hist(const struct disk_op *key)
{
	struct bio_hist *zero;
	__u32 idx = 0;

	/* a per-CPU array lookup is inlined by the verifier: nearly free on every completion */
	zero = bpf_map_lookup_elem(&empty_hist, &idx);
	if (!zero)
		return 0;
	return bpfleet_map_lookup_or_try_init(&bio_hists, key, zero);
}

/*
 * Fires once per blk_update_request(), so a partially completed request
 * fires several times: latency is taken at the first one (the start entry
 * is deleted), bytes are added at every one.
 */
static __always_inline int trace_rq_complete(struct request *rq, unsigned int nr_bytes)
{
	struct gendisk *disk;
	struct bio_hist *hist;
	struct disk_op key;
	__u64 *tsp, delta_units = 0;
	bool timed = false;

	tsp = bpf_map_lookup_elem(&start, &rq);
	if (tsp) {
		__s64 delta = (__s64)(bpf_ktime_get_ns() - *tsp);

		bpf_map_delete_elem(&start, &rq);
		if (delta >= 0) {
			delta_units = bpfleet_ns_to_units((__u64)delta);
			timed = true;
		}
	}

	/* The key has padding after op: zero it all so equal keys hash equally. */
	__builtin_memset(&key, 0, sizeof(key));
	disk = BPF_CORE_READ(rq, q, disk);
	if (disk)
		key.dev = ((__u32)BPF_CORE_READ(disk, major) << MINORBITS) |
			  (__u32)BPF_CORE_READ(disk, first_minor);
	key.op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;

	hist = lookup_hist(&key);
	if (!hist)
		return 0;

	/*
	 * Per-CPU value; the program runs with preemption off and the kernel
	 * never nests it on one CPU, so plain adds lose nothing.
	 */
	hist->bytes += nr_bytes;
	if (timed) {
		hist->slots[bpfleet_log2_slot(delta_units, BIOLATENCY_SLOTS)] += 1;
		hist->sum += delta_units;
	}
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	BPFLEET_GATE();
	return trace_rq_complete(rq, nr_bytes);
}

/* The tracepoint fires at the top of blk_update_request with the same arguments. */
SEC("fentry/blk_update_request")
int BPF_PROG(fentry_update_request, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	BPFLEET_GATE();
	return trace_rq_complete(rq, nr_bytes);
}

char LICENSE[] SEC("license") = "GPL";
