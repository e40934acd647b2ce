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

/* Values of a mitigation's mode map (bpfleet/mitigation.py MODES). */
#define BPFLEET_MODE_MONITOR	0
#define BPFLEET_MODE_ENFORCE	1

/*
 * The current task's executable as a NUL-padded path (bpf_d_path of mm->exe_file), into `out`.
 * -> 0, or < 0 when there is none (kernel threads) or it does not fit.
 * bpf_d_path is allowed in LSM hooks the kernel lists as sleepable (socket_create and
 * file_open are; kernel/bpf/bpf_lsm.c).
 */
static __always_inline int bpfleet_current_exe(struct bpfleet_path *out)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *exe;

	__builtin_memset(out, 0, sizeof(*out));
	if (!task->mm)
		return -1;
	exe = task->mm->exe_file;
	if (!exe)
		return -1;
	return bpf_d_path(&exe->f_path, out->path, sizeof(out->path)) < 0 ? -1 : 0;
}

#endif /* __BPFLEET_MITIGATION_H */
