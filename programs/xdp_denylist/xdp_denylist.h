/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __XDP_DENYLIST_H
#define __XDP_DENYLIST_H

/* struct bpf_lpm_trie_key layouts: prefix length (host order), then the address (network order). */
struct v4_prefix {
	__u32 prefixlen;
	__u8 addr[4];
};

struct v6_prefix {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Label values of xdp_denylist_decisions_total: the enumerator names are the values. */
BPFLEET_ACTION_ENUM(xdp_denylist_action);
enum xdp_denylist_reason { denied_ipv4_prefix = 0, denied_ipv6_prefix = 1 };

struct decision_key {
	enum xdp_denylist_action action;
	enum xdp_denylist_reason reason;
};

/* One ring-buffer record each time a prefix's packet count reaches a power of two
 * (1, 2, 4, 8, ...): a flood of packets makes a handful of events, not a flood of events. */
struct xdp_denylist_event {
	BPFLEET_EVENT_HEADER(enum xdp_denylist_action);
	__u32 ifindex;
	__u64 packets;			/* packets this prefix has matched so far */
	__u32 prefixlen;
	__u8 saddr[16];			/* source address: IPv4 in the first 4 bytes */
	__u8 family;			/* 4 or 6 */
};

#endif /* __XDP_DENYLIST_H */
