/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __SOCKET_FAMILY_DENY_H
#define __SOCKET_FAMILY_DENY_H

/* Label values of socket_family_deny_decisions_total: the enumerator names are the values. */
enum socket_family_deny_action { would_block = 0, blocked = 1 };
enum socket_family_deny_reason { denied_family = 0 };

struct decision_key {
	enum socket_family_deny_action action;
	enum socket_family_deny_reason reason;
	__u32 family;
};

/* One ring-buffer record per decision: who tried to create which socket. */
struct socket_family_deny_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 uid;
	__u32 family;
	__u32 type;
	__u32 protocol;
	enum socket_family_deny_action action;
	char comm[16];
	char exe[256];
};

#endif /* __SOCKET_FAMILY_DENY_H */
