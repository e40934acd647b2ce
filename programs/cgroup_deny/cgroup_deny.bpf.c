// SPDX-License-Identifier: GPL-2.0
/*
 * Mitigation: inside one cgroup (v2), refuse opening or creating devices on a deny-list
 * (cgroup/dev) and refuse writing sysctls on a deny-list (cgroup/sysctl). Both return EPERM
 * to the caller in enforce mode; in monitor mode they count and report only.
 * docs/mitigations.md.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"
#include "bpfleet_mitigation.h"
#include "cgroup_deny.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct device_key);
	__type(value, __u64);
} deny_devices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct sysctl_key);
	__type(value, __u64);
} deny_sysctls SEC(".maps");

const struct cgroup_deny_event *const cgroup_deny_event_btf = 0;

/* Count the match and the decision; -> 1 to allow, 0 to refuse (EPERM). */
static __always_inline int decide(__u64 *hits, enum cgroup_deny_reason reason, __u32 action)
{
	struct decision_key key = { .action = action, .reason = reason };

	__sync_fetch_and_add(hits, 1);
	return !bpfleet_decide(&key, action);
}

SEC("cgroup/dev")
int deny_device(struct bpf_cgroup_dev_ctx *ctx)
{
	struct device_key key = { .type = ctx->access_type & 0xffff, .major = ctx->major, .minor = ctx->minor };
	struct cgroup_deny_event *e;
	__u32 action;
	__u64 *hits;

	if (!bpfleet_active())
		return 1;
	hits = bpf_map_lookup_elem(&deny_devices, &key);
	if (!hits) {
		key.minor = CGROUP_DENY_ANY;
		hits = bpf_map_lookup_elem(&deny_devices, &key);
	}
	if (!hits) {
		key.major = CGROUP_DENY_ANY;
		hits = bpf_map_lookup_elem(&deny_devices, &key);
	}
	if (!hits)
		return 1;
	action = bpfleet_action();
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__builtin_memset(e, 0, sizeof(*e));
		e->reason = denied_device;
		e->dev_type = ctx->access_type & 0xffff;
		e->dev_major = ctx->major;
		e->dev_minor = ctx->minor;
		e->dev_access = ctx->access_type >> 16;
		bpfleet_submit_task_event(e, action);
	} else {
		bpfleet_event_dropped();
	}
	return decide(hits, denied_device, action);
}

SEC("cgroup/sysctl")
int deny_sysctl_write(struct bpf_sysctl *ctx)
{
	struct sysctl_key key = {};
	struct cgroup_deny_event *e;
	__u32 action;
	__u64 *hits;

	if (!bpfleet_active() || !ctx->write)
		return 1;
	if (bpf_sysctl_get_name(ctx, key.name, sizeof(key.name), 0) < 0)
		return 1;	/* longer than any name we can hold: not on the list */
	hits = bpf_map_lookup_elem(&deny_sysctls, &key);
	if (!hits)
		return 1;
	action = bpfleet_action();
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__builtin_memset(e, 0, sizeof(*e));
		e->reason = denied_sysctl_write;
		__builtin_memcpy(e->sysctl, key.name, sizeof(e->sysctl));
		bpfleet_submit_task_event(e, action);
	} else {
		bpfleet_event_dropped();
	}
	return decide(hits, denied_sysctl_write, action);
}

char LICENSE[] SEC("license") = "GPL";
