/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __EXEC_H
#define __EXEC_H

#define EXEC_COMM_LEN		16
#define EXEC_FILENAME_LEN	128

struct exec_key {
	char comm[EXEC_COMM_LEN];
};

/* One ring buffer record per successful execve/execveat. */
struct exec_event {
	__u32 pid;				/* thread group id */
	__u32 ppid;				/* real parent's thread group id */
	__u32 uid;
	char comm[EXEC_COMM_LEN];		/* command after exec */
	char filename[EXEC_FILENAME_LEN];	/* path as passed to exec, truncated, NUL-terminated */
};

#endif /* __EXEC_H */
