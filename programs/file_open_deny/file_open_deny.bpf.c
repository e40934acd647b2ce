// SPDX-License-Identifier: GPL-2.0
/*
 * Mitigation (BPF-LSM): refuse opening deny-listed paths, except for allow-listed
 * executables. The seeds' file_open LSM example (deny everything but pid 1) made into a
 * policy: the paths and the executables are lists in maps, changed at run time.
 * docs/mitigations.md.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "bpfleet.h"
#define BPFLEET_EVENTS_BYTES	(128 * 1024)	/* two paths per record */
#include "bpfleet_mitigation.h"
#include "file_open_deny.h"

#define EPERM 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct bpfleet_path);
	__type(value, __u64);
} deny_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct bpfleet_path);
	__type(value, __u64);
} allow_exe SEC(".maps");

/* [0]: the opened path, [1]: the executable, [2]: bpfleet_path_key()'s tmp; too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct bpfleet_path);
} scratch SEC(".maps");

const struct file_open_deny_event *const file_open_deny_event_btf = 0;

SEC("lsm/file_open")
int BPF_PROG(file_open, struct file *file, int ret)
{
	__u32 zero = 0, one_idx = 1, two_idx = 2;
	struct decision_key key = { .reason = denied_path };
	struct file_open_deny_event *e;
	struct bpfleet_path *path, *exe, *tmp;
	__u64 *hits;

	if (ret || !bpfleet_active())
		return ret;
	path = bpf_map_lookup_elem(&scratch, &zero);
	exe = bpf_map_lookup_elem(&scratch, &one_idx);
	tmp = bpf_map_lookup_elem(&scratch, &two_idx);
	if (!path || !exe || !tmp)
		return 0;
	if (bpfleet_path_key(&file->f_path, path, tmp) < 0)
		return 0;
	hits = bpf_map_lookup_elem(&deny_paths, path);
	if (!hits)
		return 0;
	if (bpfleet_current_exe(exe, tmp) == 0 && bpf_map_lookup_elem(&allow_exe, exe))
		return 0;
	key.action = bpfleet_action();
	__sync_fetch_and_add(hits, 1);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->flags = file->f_flags;
		__builtin_memcpy(e->path, path->path, sizeof(e->path));
		__builtin_memcpy(e->exe, exe->path, sizeof(e->exe));
		bpfleet_submit_task_event(e, key.action);
	} else {
		bpfleet_event_dropped();
	}
	return bpfleet_decide(&key, key.action) ? -EPERM : 0;
}

char LICENSE[] SEC("license") = "GPL";
