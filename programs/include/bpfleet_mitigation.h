/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Helpers shared by bpfleet's built-in mitigations (docs/mitigations.md). Include after
 * vmlinux.h, bpf_helpers.h, bpf_tracing.h and bpfleet.h. */
#ifndef __BPFLEET_MITIGATION_H
#define __BPFLEET_MITIGATION_H

/* An exe_path / path list key: the path NUL-padded to the full width, as the exporter writes it. */
#define BPFLEET_PATH_LEN	256

struct bpfleet_path {
	char path[BPFLEET_PATH_LEN];
};

/* Values of a mitigation's mode map (core/mitigation.py MODES). */
#define BPFLEET_MODE_MONITOR	0
#define BPFLEET_MODE_ENFORCE	1

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
