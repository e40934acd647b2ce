// SPDX-License-Identifier: GPL-2.0
/*
 * The floor for bench/bench_kernel_cost.py: a raw_tp/sys_enter program that
 * does nothing. Its run_time_ns / run_cnt is what the kernel's BPF dispatch
 * and bpf_stats accounting cost alone on this machine.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("raw_tp/sys_enter")
int empty_enter(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
