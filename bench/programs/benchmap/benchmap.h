/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BENCHMAP_H
#define __BENCHMAP_H

#define BENCHMAP_COMM_LEN	16
/* Room for the 100k-series benchmark plus headroom. */
#define BENCHMAP_MAX_ENTRIES	131072

/* 20 bytes, no padding: the benchmark fills keys from user space byte for byte. */
struct bench_key {
	char comm[BENCHMAP_COMM_LEN];
	__u32 pid;
};

#endif /* __BENCHMAP_H */
