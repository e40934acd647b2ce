/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __SOCKET_FAMILY_DENY_H
#define __SOCKET_FAMILY_DENY_H

/* Label values of socket_family_deny_decisions_total: the enumerator names are the values. */
BPFLEET_ACTION_ENUM(socket_family_deny_action);
enum socket_family_deny_reason { denied_family = 0 };

struct decision_key {
	enum socket_family_deny_action action;
	enum socket_family_deny_reason reason;
	__u32 family;
};

/* One ring-buffer record per decision: who tried to create which socket. */
struct socket_family_deny_event {
	BPFLEET_TASK_EVENT_HEADER(enum socket_family_deny_action);
	__u32 family;
	__u32 type;
	__u32 protocol;
	char exe[BPFLEET_PATH_LEN];
};

#endif /* __SOCKET_FAMILY_DENY_H */
