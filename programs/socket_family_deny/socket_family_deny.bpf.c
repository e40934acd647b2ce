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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mode SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, struct decision_key);
	__type(value, __u64);
} decisions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);		/* [0] the executable, [1] bpfleet_path_key()'s tmp */
	__type(key, __u32);
	__type(value, struct bpfleet_path);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

__u64 events_dropped = 0;
const struct socket_family_deny_event *const socket_family_deny_event_btf = 0;

SEC("lsm/socket_create")
int BPF_PROG(socket_create, int family, int type, int protocol, int kern, int ret)
{
	__u32 zero = 0, one_idx = 1, fam = family, *m;
	struct decision_key key = { .reason = denied_family, .family = family };
	struct socket_family_deny_event *e;
	struct bpfleet_path *exe, *tmp;
	__u64 one = 1, *hits, *count;

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
	m = bpf_map_lookup_elem(&mode, &zero);
	key.action = m && *m == BPFLEET_MODE_ENFORCE ? blocked : would_block;
	__sync_fetch_and_add(hits, 1);
	count = bpf_map_lookup_elem(&decisions, &key);
	if (count)
		*count += 1;
	else
		bpf_map_update_elem(&decisions, &key, &one, BPF_NOEXIST);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->ts_ns = bpf_ktime_get_ns();
		e->cgroup_id = bpf_get_current_cgroup_id();
		e->pid = bpf_get_current_pid_tgid() >> 32;
		e->uid = (__u32)bpf_get_current_uid_gid();
		e->family = family;
		e->type = type;
		e->protocol = protocol;
		e->action = key.action;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		__builtin_memcpy(e->exe, exe->path, sizeof(e->exe));
		bpf_ringbuf_submit(e, 0);
	} else {
		__sync_fetch_and_add(&events_dropped, 1);
	}
	return key.action == blocked ? -EPERM : 0;
}

char LICENSE[] SEC("license") = "GPL";
