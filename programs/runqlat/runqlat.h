/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __RUNQLAT_H
#define __RUNQLAT_H

/* Microseconds: slot 26 tops out at 2^25 us (~34 s) and the last slot holds the rest. */
#define RUNQLAT_SLOTS	27

struct runq_hist {
	__u64 slots[RUNQLAT_SLOTS];
	__u64 sum;	/* microseconds */
};

#endif /* __RUNQLAT_H */
