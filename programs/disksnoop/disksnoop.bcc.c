// SPDX-License-Identifier: GPL-2.0
/*
 * disksnoop, from the seed talk's bcc example (bcc's examples/tracing/disksnoop.py), as a
 * bcc-source program: bcc compiles this on the host against its kernel headers. Instead of
 * printing one line per request through bpf_trace_printk, it keeps a log2 latency histogram
 * and a byte count per operation in a table, which the exporter reads like any CO-RE map.
 *
 * Attach points (manifest.toml [bcc]): kprobes on blk_mq_start_request (issue) and
 * blk_update_request (completion: the function behind the block_rq_complete tracepoint; the
 * seed's blk_account_io_done is inlined on current kernels).
 */
#include <uapi/linux/ptrace.h>
#include <linux/blk-mq.h>

#define SLOTS 66		/* BPFLEET_LOG2_SLOTS */
#define OP_MASK 0xff		/* REQ_OP_MASK */

struct disk_key {
	u32 op;			/* REQ_OP_READ 0, REQ_OP_WRITE 1, ... */
};

struct disk_hist {
	u64 slots[SLOTS];	/* log2 of 2^-20 s units, as programs/include/bpfleet.h */
	u64 sum;
	u64 bytes;
};

BPF_HASH(start, struct request *, u64, 10240);
BPF_HASH(disk_io, struct disk_key, struct disk_hist, 64);
BPF_PERCPU_ARRAY(empty_hist, struct disk_hist, 1);	/* 544 bytes: too big for the stack */

/* bpfleet_log2_slot(): slot 0 holds 0, slot s >= 1 holds (2^(s-2), 2^(s-1)] */
static inline u32 log2_slot(u64 v)
{
	u32 s;

	if (v == 0)
		return 0;
	v -= 1;
	s = 1;
	if (v >> 32) { s += 32; v >>= 32; }
	if (v >> 16) { s += 16; v >>= 16; }
	if (v >> 8)  { s += 8;  v >>= 8; }
	if (v >> 4)  { s += 4;  v >>= 4; }
	if (v >> 2)  { s += 2;  v >>= 2; }
	if (v >> 1)  { s += 1;  v >>= 1; }
	s += v;
	return s < SLOTS ? s : SLOTS - 1;
}

int trace_start(struct pt_regs *ctx, struct request *req)
{
	u64 ts = bpf_ktime_get_ns();

	start.update(&req, &ts);
	return 0;
}

int trace_completion(struct pt_regs *ctx, struct request *req, blk_status_t error,
		     unsigned int nr_bytes)
{
	struct disk_key key = {};
	struct disk_hist *hist, *zero;
	u64 *tsp, units = 0;
	int idx = 0, timed = 0;

	tsp = start.lookup(&req);
	if (tsp) {
		s64 delta = (s64)(bpf_ktime_get_ns() - *tsp);

		start.delete(&req);
		if (delta >= 0) {
			/* bpfleet_ns_to_units(): 2^-20 s, rounded up; beyond 2^44 ns, the top slot */
			units = delta >= (1LL << 44) ? ~0ULL :
				(((u64)delta << 20) + 999999999ULL) / 1000000000ULL;
			timed = 1;
		}
	}
	key.op = req->cmd_flags & OP_MASK;
	zero = empty_hist.lookup(&idx);
	if (!zero)
		return 0;
	hist = disk_io.lookup_or_try_init(&key, zero);
	if (!hist)
		return 0;
	__sync_fetch_and_add(&hist->bytes, nr_bytes);
	if (timed) {
		u64 slot = log2_slot(units);

		/* clang drops a bounds check it can prove, and the verifier then cannot: hide it */
		asm volatile("" : "=r"(slot) : "0"(slot));
		if (slot < SLOTS)
			__sync_fetch_and_add(&hist->slots[slot], 1);
		__sync_fetch_and_add(&hist->sum, units);
	}
	return 0;
}
