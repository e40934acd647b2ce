/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __FILE_OPEN_DENY_H
#define __FILE_OPEN_DENY_H

/* Label values of file_open_deny_decisions_total: the enumerator names are the values. */
enum file_open_deny_action { would_block = 0, blocked = 1 };
enum file_open_deny_reason { denied_path = 0 };

struct decision_key {
	enum file_open_deny_action action;
	enum file_open_deny_reason reason;
};

/* One ring-buffer record per decision: who tried to open what. */
struct file_open_deny_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 uid;
	__u32 flags;			/* f_flags of the open */
	enum file_open_deny_action action;
	char comm[16];
	char path[256];
	char exe[256];
};

#endif /* __FILE_OPEN_DENY_H */
