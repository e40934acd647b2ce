// SPDX-License-Identifier: GPL-2.0
/*
 * Mitigation (BPF-LSM): refuse creating sockets of deny-listed address families, except for
 * allow-listed executables. The shape of the public AF_ALG ("Copy Fail") mitigation that was
 * deployed fleet-wide before the kernel fix: block AF_ALG everywhere but in the few tools
 * that need it. docs/mitigations.md.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "bpfleet.h"
#define BPFLEET_DECISIONS_MAX	64	/* action x family */
#include "bpfleet_mitigation.h"
#include "socket_family_deny.h"

#define EPERM 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} deny_families SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct bpfleet_path);
	__type(value, __u64);
} allow_exe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);		/* [0] the executable, [1] bpfleet_path_key()'s tmp */
	__type(key, __u32);
	__type(value, struct bpfleet_path);
} scratch SEC(".maps");

const struct socket_family_deny_event *const socket_family_deny_event_btf = 0;

SEC("lsm/socket_create")
int BPF_PROG(socket_create, int family, int type, int protocol, int kern, int ret)
{
	__u32 zero = 0, one_idx = 1, fam = family;
	struct decision_key key = { .reason = denied_family, .family = family };
	struct socket_family_deny_event *e;
	struct bpfleet_path *exe, *tmp;
	__u64 *hits;

	if (ret || kern || !bpfleet_active())
		return ret;
	hits = bpf_map_lookup_elem(&deny_families, &fam);
	if (!hits)
		return 0;
	exe = bpf_map_lookup_elem(&scratch, &zero);
	tmp = bpf_map_lookup_elem(&scratch, &one_idx);
	if (!exe || !tmp)
		return 0;
	if (bpfleet_current_exe(exe, tmp) == 0 && bpf_map_lookup_elem(&allow_exe, exe))
		return 0;
	key.action = bpfleet_action();
	__sync_fetch_and_add(hits, 1);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->family = family;
		e->type = type;
		e->protocol = protocol;
		__builtin_memcpy(e->exe, exe->path, sizeof(e->exe));
		bpfleet_submit_task_event(e, key.action);
	} else {
		bpfleet_event_dropped();
	}
	return bpfleet_decide(&key, key.action) ? -EPERM : 0;
}

char LICENSE[] SEC("license") = "GPL";
