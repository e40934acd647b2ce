/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __TCP_H
#define __TCP_H

/* Values of tcp_conn_key.direction */
#define TCP_DIRECTION_ACTIVE	0	/* connect(): CLOSE -> SYN_SENT, port is the remote port */
#define TCP_DIRECTION_PASSIVE	1	/* accepted: SYN_RECV -> ESTABLISHED, port is the local port */

/* Kernel TCP states (TCP_ESTABLISHED = 1 ... TCP_BOUND_INACTIVE = 13). */
struct tcp_transition_key {
	__u8 old_state;
	__u8 new_state;
};

struct tcp_conn_key {
	__u16 port;	/* host byte order */
	__u8 direction;
};

#endif /* __TCP_H */
