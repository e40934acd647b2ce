// SPDX-License-Identifier: GPL-2.0
/*
 * Mitigation: drop packets whose source address is in a deny-list of prefixes (a DDoS from
 * known networks). The deny-lists are LPM tries updated at run time by the exporter; each
 * prefix's value counts the packets it matched. The mode map says whether a match is dropped
 * (enforce) or only counted (monitor). docs/mitigations.md.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "bpfleet.h"
#include "bpfleet_mitigation.h"
#include "xdp_denylist.h"

#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct v4_prefix);
	__type(value, __u64);
} deny_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct v6_prefix);
	__type(value, __u64);
} deny_v6 SEC(".maps");

const struct xdp_denylist_event *const xdp_denylist_event_btf = 0;

/*
 * Count the match and the decision. No task to report (XDP runs in the driver): an event says
 * which prefix, and only at its 1st, 2nd, 4th, 8th, ... packet.
 */
static __always_inline int decide(struct xdp_md *ctx, __u64 *hits, enum xdp_denylist_reason reason,
				  const void *saddr, __u32 len, __u32 prefixlen, __u8 family)
{
	struct decision_key key = { .action = bpfleet_action(), .reason = reason };
	struct xdp_denylist_event *e;
	__u64 n;

	n = __sync_fetch_and_add(hits, 1) + 1;
	bpfleet_decide(&key, key.action);
	if ((n & (n - 1)) == 0) {
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			__builtin_memset(e, 0, sizeof(*e));
			e->packets = n;
			e->ifindex = ctx->ingress_ifindex;
			e->prefixlen = prefixlen;
			e->family = family;
			__builtin_memcpy(e->saddr, saddr, len);
			bpfleet_submit_event(e, key.action);
		} else {
			bpfleet_event_dropped();
		}
	}
	return key.action == blocked ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_denylist(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u64 *hits;

	if (!bpfleet_active())		/* another version counts during an upgrade */
		return XDP_PASS;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct v4_prefix key = { .prefixlen = 32 };

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		__builtin_memcpy(key.addr, &ip->saddr, 4);
		hits = bpf_map_lookup_elem(&deny_v4, &key);
		if (hits)
			return decide(ctx, hits, denied_ipv4_prefix, key.addr, 4, 32, 4);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct v6_prefix key = { .prefixlen = 128 };

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		hits = bpf_map_lookup_elem(&deny_v6, &key);
		if (hits)
			return decide(ctx, hits, denied_ipv6_prefix, key.addr, 16, 128, 6);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
