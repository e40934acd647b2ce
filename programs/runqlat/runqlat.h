/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __RUNQLAT_H
#define __RUNQLAT_H

/* Microseconds: slot 26 tops out at 2^25 us (~34 s) and the last slot holds the rest. */
#define RUNQLAT_SLOTS	66	/* = BPFLEET_LOG2_SLOTS: room for any u64, no overflow slot */

struct runq_hist {
	__u64 slots[RUNQLAT_SLOTS];
	__u64 sum;	/* units of 2^-20 s, see bpfleet_ns_to_units() */
};

#endif /* __RUNQLAT_H */
