// SPDX-License-Identifier: GPL-2.0
/*
 * Successful execs: a count by command, and one ring buffer event per exec.
 * sched_process_exec fires after the new image is in place, so the comm
 * read here is the new program's, and failed execs are not seen.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "bpfleet.h"
#include <bpf/bpf_core_read.h>
#include "exec.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct exec_key);
	__type(value, __u64);
} exec_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/*
 * Never read: puts struct exec_event into the object's BTF (clang leaves out types used only
 * through local pointers), so the manifest's [[events]] type can name it. It lives in .rodata
 * and leaves .bss (`dropped`) as it was, which upgrades share between versions.
 */
const struct exec_event *const exec_event_btf = 0;

/* Failed ring buffer reserves: the reader fell behind and events were lost. */
__u64 dropped = 0;

SEC("tracepoint/sched/sched_process_exec")
int sched_process_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task;
	struct exec_event *e;
	struct exec_key key;
	unsigned int fname_off;

	BPFLEET_GATE();

	__builtin_memset(&key, 0, sizeof(key));
	bpf_get_current_comm(key.comm, sizeof(key.comm));

	/* Exec rates are low; a shared counter with atomics is cheaper than per-CPU values here. */
	bpfleet_map_increment(&exec_counts, &key, 1);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}

	task = (struct task_struct *)bpf_get_current_task();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	__builtin_memcpy(e->comm, key.comm, sizeof(e->comm));
	/* __data_loc: low 16 bits are the offset of the string within the record. */
	fname_off = ctx->__data_loc_filename & 0xFFFF;
	if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + fname_off) < 0)
		e->filename[0] = '\0';

	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
