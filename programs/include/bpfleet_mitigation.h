/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * What bpfleet's built-in mitigations share (docs/mitigations.md, "The program's side"): the
 * mode, decisions and events maps, the action label, the first members of every event,
 * bpfleet_decide(), which counts a decision and says whether to block, and the event submitters.
 *
 * Include after vmlinux.h, bpf_helpers.h and bpfleet.h, and before the program's own header.
 * That header declares the action enum with BPFLEET_ACTION_ENUM(), `struct decision_key` (the
 * decisions map's key: `action`, `reason` and whatever else labels a decision; the map below
 * names it before it is complete, which C allows and BTF does not see) and the event, which
 * starts with BPFLEET_EVENT_HEADER() or BPFLEET_TASK_EVENT_HEADER(). Before the include a
 * program may size the maps:
 *   BPFLEET_DECISIONS_MAX   entries of the decisions map (default 8)
 *   BPFLEET_EVENTS_BYTES    bytes of the events ring buffer (default 64 KiB)
 */
#ifndef __BPFLEET_MITIGATION_H
#define __BPFLEET_MITIGATION_H

#ifndef BPFLEET_DECISIONS_MAX
#define BPFLEET_DECISIONS_MAX	8
#endif
#ifndef BPFLEET_EVENTS_BYTES
#define BPFLEET_EVENTS_BYTES	(64 * 1024)
#endif

/* An exe_path / path list key: the path NUL-padded to the full width, as the exporter writes it. */
#define BPFLEET_PATH_LEN	256

struct bpfleet_path {
	char path[BPFLEET_PATH_LEN];
};

/* Values of a mitigation's mode map (core/mitigation.py MODES). */
#define BPFLEET_MODE_MONITOR	0
#define BPFLEET_MODE_ENFORCE	1

/* Values of the action label (core/mitigation.py ACTIONS): what each mode does to a match. */
#define BPFLEET_WOULD_BLOCK	0
#define BPFLEET_BLOCKED		1

/*
 * The action enum, whose enumerator names are the label values of the decisions counter and
 * of the events. Each program names its own type (`cgroup_deny_action`): the name is part of
 * the decisions map's BTF, which an upgrade compares before it hands the map and its counts
 * over to the new version (exporter/handover.py).
 */
#define BPFLEET_ACTION_ENUM(name)						\
	enum name { would_block = BPFLEET_WOULD_BLOCK, blocked = BPFLEET_BLOCKED };	\
	_Static_assert(sizeof(enum name) == sizeof(__u32), "an action is a __u32")

/*
 * The first members of every event record, in this order: when, and what was decided. Events
 * of programs that run in a task's context (LSM, cgroup hooks) go on with who: the process,
 * its user and cgroup. bpfleet_submit_event() and bpfleet_submit_task_event() fill these in; the record's own
 * members follow. Members, not a nested struct, so that they decode as `pid`, not `head_pid`.
 */
#define BPFLEET_COMM_LEN	16

#define BPFLEET_EVENT_HEADER(action_type)					\
	__u64 ts_ns;		/* bpf_ktime_get_ns() */			\
	action_type action

#define BPFLEET_TASK_EVENT_HEADER(action_type)					\
	BPFLEET_EVENT_HEADER(action_type);					\
	__u32 pid;		/* thread group id */				\
	__u64 cgroup_id;							\
	__u32 uid;								\
	char comm[BPFLEET_COMM_LEN]

struct bpfleet_event {
	BPFLEET_EVENT_HEADER(__u32);
};

struct bpfleet_task_event {
	BPFLEET_TASK_EVENT_HEADER(__u32);
};

/* The mode: BPFLEET_MODE_MONITOR until the exporter writes one (after the lists). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mode SEC(".maps");

/* The decisions counter ([mitigation] decisions); struct decision_key is the program's. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BPFLEET_DECISIONS_MAX);
	__type(key, struct decision_key);
	__type(value, __u64);
} decisions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BPFLEET_EVENTS_BYTES);
} events SEC(".maps");

/* Events lost because the ring buffer was full: the manifest's [[events]] drops. */
__u64 events_dropped = 0;

/* What a deny-list match does in the current mode. */
static __always_inline __u32 bpfleet_action(void)
{
	__u32 zero = 0, *m = bpf_map_lookup_elem(&mode, &zero);

	return m && *m == BPFLEET_MODE_ENFORCE ? BPFLEET_BLOCKED : BPFLEET_WOULD_BLOCK;
}

/*
 * Reporting a decision. The program reserves its event from `events` and tests the pointer
 * exactly once: if it is there, it fills in its own members and submits it with
 * bpfleet_submit_event() (or bpfleet_submit_task_event(), which also fills in who); if not,
 * bpfleet_event_dropped() counts the loss. A helper that tests the pointer again would be
 * wrong on older verifiers: 6.1's does not know that a pointer it has seen non-NULL cannot be
 * NULL at a second test, walks the impossible branch and refuses the program with
 * "Unreleased reference" (measured in the lab's 6.1 VM).
 */
static __always_inline void bpfleet_event_dropped(void)
{
	__sync_fetch_and_add(&events_dropped, 1);
}

/* Stamp a reserved event (not NULL) with the time and the action, and submit it. */
static __always_inline void bpfleet_submit_event(void *event, __u32 action)
{
	struct bpfleet_event *e = event;

	e->ts_ns = bpf_ktime_get_ns();
	e->action = action;
	bpf_ringbuf_submit(e, 0);
}

/* The same for an event that starts with BPFLEET_TASK_EVENT_HEADER: who it was, too. */
static __always_inline void bpfleet_submit_task_event(void *event, __u32 action)
{
	struct bpfleet_task_event *e = event;

	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpfleet_submit_event(e, action);
}

/* Count a decision under `key`, whose action is `action` (from bpfleet_action()). -> true to
 * refuse. (struct decision_key is still incomplete here: the program's header completes it.) */
static __always_inline bool bpfleet_decide(const struct decision_key *key, __u32 action)
{
	bpfleet_map_increment(&decisions, key, 1);
	return action == BPFLEET_BLOCKED;
}

/*
 * A path as a list key: NUL-padded to the full width. bpf_d_path builds the path at the end of
 * its buffer and moves it to the front, leaving a copy of its tail behind the NUL, so it
 * writes into `tmp` and only the string is copied into the zeroed `out`.
 * -> 0, or < 0 when the path does not fit.
 * bpf_d_path is allowed in LSM hooks the kernel lists as sleepable (socket_create and
 * file_open are; kernel/bpf/bpf_lsm.c).
 */
static __always_inline int bpfleet_path_key(struct path *path, struct bpfleet_path *out,
					    struct bpfleet_path *tmp)
{
	__builtin_memset(out, 0, sizeof(*out));
	if (bpf_d_path(path, tmp->path, sizeof(tmp->path)) < 0)
		return -1;
	return bpf_probe_read_kernel_str(out->path, sizeof(out->path), tmp->path) < 0 ? -1 : 0;
}

/* The current task's executable (mm->exe_file) as a list key; < 0 for kernel threads. */
static __always_inline int bpfleet_current_exe(struct bpfleet_path *out, struct bpfleet_path *tmp)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *exe;

	__builtin_memset(out, 0, sizeof(*out));
	if (!task->mm)
		return -1;
	exe = task->mm->exe_file;
	if (!exe)
		return -1;
	return bpfleet_path_key(&exe->f_path, out, tmp);
}

#endif /* __BPFLEET_MITIGATION_H */
