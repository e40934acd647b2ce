/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __CGROUP_DENY_H
#define __CGROUP_DENY_H

#define CGROUP_DENY_SYSCTL_LEN	64
#define CGROUP_DENY_ANY		0xffffffff	/* "*" in a device entry */

/* A device list key (core/listkinds.py "device"): type 2 char, 1 block. */
struct device_key {
	__u32 type;
	__u32 major;
	__u32 minor;
};

struct sysctl_key {
	char name[CGROUP_DENY_SYSCTL_LEN];
};

/* Label values of cgroup_deny_decisions_total: the enumerator names are the values. */
BPFLEET_ACTION_ENUM(cgroup_deny_action);
enum cgroup_deny_reason { denied_device = 0, denied_sysctl_write = 1 };

struct decision_key {
	enum cgroup_deny_action action;
	enum cgroup_deny_reason reason;
};

/* One ring-buffer record per decision. */
struct cgroup_deny_event {
	BPFLEET_TASK_EVENT_HEADER(enum cgroup_deny_action);
	enum cgroup_deny_reason reason;
	__u32 dev_type;			/* devices: 2 char, 1 block */
	__u32 dev_major;
	__u32 dev_minor;
	__u32 dev_access;		/* BPF_DEVCG_ACC_MKNOD 1, READ 2, WRITE 4 */
	char sysctl[CGROUP_DENY_SYSCTL_LEN];	/* sysctls: the name, "net/ipv4/ip_forward" */
};

#endif /* __CGROUP_DENY_H */
