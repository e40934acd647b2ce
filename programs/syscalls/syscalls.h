/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __SYSCALLS_H
#define __SYSCALLS_H

/* x86_64 has ~460 syscall numbers; ids at or above this are not counted. */
#define SYSCALLS_MAX_ID		512
#define SYSCALLS_COMM_LEN	16

struct proc_syscall_key {
	char comm[SYSCALLS_COMM_LEN];
	__u32 syscall;
};

#endif /* __SYSCALLS_H */
