/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __FILE_OPEN_DENY_H
#define __FILE_OPEN_DENY_H

/* Label values of file_open_deny_decisions_total: the enumerator names are the values. */
BPFLEET_ACTION_ENUM(file_open_deny_action);
enum file_open_deny_reason { denied_path = 0 };

struct decision_key {
	enum file_open_deny_action action;
	enum file_open_deny_reason reason;
};

/* One ring-buffer record per decision: who tried to open what. */
struct file_open_deny_event {
	BPFLEET_TASK_EVENT_HEADER(enum file_open_deny_action);
	__u32 flags;			/* f_flags of the open */
	char path[BPFLEET_PATH_LEN];
	char exe[BPFLEET_PATH_LEN];
};

#endif /* __FILE_OPEN_DENY_H */
