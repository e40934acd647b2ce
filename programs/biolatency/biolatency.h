/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BIOLATENCY_H
#define __BIOLATENCY_H

/* Microseconds: slot 26 tops out at 2^25 us (~34 s) and the last slot holds the rest. */
#define BIOLATENCY_SLOTS	66	/* = BPFLEET_LOG2_SLOTS: room for any u64, no overflow slot */

struct disk_op {
	__u32 dev;	/* kernel dev_t of the whole disk: major << 20 | first_minor */
	__u8 op;	/* REQ_OP_* (cmd_flags & REQ_OP_MASK) */
};

struct bio_hist {
	__u64 slots[BIOLATENCY_SLOTS];
	__u64 sum;	/* units of 2^-20 s, see bpfleet_ns_to_units() */
	__u64 bytes;	/* bytes completed, including requests with no start time */
};

#endif /* __BIOLATENCY_H */
