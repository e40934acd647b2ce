// SPDX-License-Identifier: GPL-2.0
/*
 * OOM kills. oom/mark_victim fires once per task the OOM killer picks
 * (global, cgroup and memcg OOMs alike), which is what "OOM kills" means
 * to a reader of the kernel log.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"

__u64 oom_kills = 0;

SEC("tracepoint/oom/mark_victim")
int mark_victim(void *ctx)
{
	BPFLEET_GATE();
	__sync_fetch_and_add(&oom_kills, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
