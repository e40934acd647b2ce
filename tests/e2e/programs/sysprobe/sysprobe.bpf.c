// SPDX-License-Identifier: GPL-2.0
/*
 * sysprobe: the rollout e2e tests' program. Syscalls counted by syscall number (like the built-in
 * syscalls), in variants that make a version good or bad in a known way. variant.h, written by
 * the tests for each version, selects one:
 *
 *   VARIANT_NEWKERNEL  also walks an open-coded numeric iterator (bpf_iter_num_* kfuncs, added in
 *                      Linux 6.4): loads on newer kernels, is refused on Debian 12's 6.1.
 *   VARIANT_COSTLY     also spins COSTLY_LOOPS rounds of bpf_loop per syscall: loads and works
 *                      everywhere, but costs far more kernel time per event than a budget allows.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"
#include "variant.h"

#define SYSPROBE_MAX_ID 512

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYSPROBE_MAX_ID);
	__type(key, __u32);
	__type(value, __u64);
} sysprobe_counts SEC(".maps");

#if VARIANT_NEWKERNEL
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __weak __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __weak __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __weak __ksym;
#endif

#if VARIANT_COSTLY
static long spin(__u32 i, void *ctx)
{
	__u64 *acc = ctx;

	*acc = *acc * 31 + i;
	return 0;
}
#endif

SEC("raw_tp/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 id = (__u32)ctx->args[1];
	__u64 acc = VARIANT_SEED, *count;

	BPFLEET_GATE();
#if VARIANT_NEWKERNEL
	{
		struct bpf_iter_num it;
		int *v;

		bpf_iter_num_new(&it, 0, 4);
		while ((v = bpf_iter_num_next(&it)))
			acc += *v;
		bpf_iter_num_destroy(&it);
	}
#endif
#if VARIANT_COSTLY
	bpf_loop(COSTLY_LOOPS, spin, &acc, 0);
#endif
	if (acc == 0xdeadbeefULL)   /* never: keeps the work above from being optimised away */
		id = 0;
	count = bpf_map_lookup_elem(&sysprobe_counts, &id);
	if (count)
		*count += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
