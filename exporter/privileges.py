"""Capabilities: check what the exporter needs at start, drop what it no longer needs once its
programs are attached (docs/security.md).

Loading and attaching tracing programs needs CAP_BPF and CAP_PERFMON, and so does every later
reload, upgrade, degrade step or re-enable, so those two stay. Networking programs (XDP, tc,
cgroup skb/sock) also need CAP_NET_ADMIN, which stays only while such a program runs. Everything
else goes: from the effective, permitted and inheritable sets (capset), the ambient set, and -
when CAP_SETPCAP allows it - the bounding set, so not even an exec could bring it back.

Capabilities belong to threads: drop() must run before the exporter starts its threads (it
says so in the log if it doesn't). Linux only; plain ctypes over libc.
"""
from __future__ import annotations

import ctypes as C
import logging
import os

log = logging.getLogger("bpfleet.exporter")

NAMES = ["cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
         "cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
         "cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw",
         "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot",
         "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice",
         "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
         "cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override",
         "cap_mac_admin", "cap_syslog", "cap_wake_alarm", "cap_block_suspend", "cap_audit_read",
         "cap_perfmon", "cap_bpf", "cap_checkpoint_restore"]
NUMBER = {n: i for i, n in enumerate(NAMES)}
REQUIRED = ("cap_bpf", "cap_perfmon")          # to load and attach, now and on every reload
# libbpf program types whose attach needs CAP_NET_ADMIN.
NETWORK_PROGRAM_TYPES = {"xdp", "sched_cls", "sched_act", "cgroup_skb", "cgroup_sock",
                         "cgroup_sock_addr", "sock_ops", "sk_skb", "sk_msg", "lwt_in", "lwt_out",
                         "lwt_xmit", "lwt_seg6local", "flow_dissector", "sk_lookup",
                         "sk_reuseport", "netfilter", "cgroup_sockopt", "cgroup_device",
                         "cgroup_sysctl"}

PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_FIELDS = {"effective": "CapEff", "permitted": "CapPrm", "inheritable": "CapInh",
           "bounding": "CapBnd", "ambient": "CapAmb"}


class _Header(C.Structure):
    _fields_ = [("version", C.c_uint32), ("pid", C.c_int)]


class _Data(C.Structure):
    _fields_ = [("effective", C.c_uint32), ("permitted", C.c_uint32), ("inheritable", C.c_uint32)]


def _names(mask: int) -> list[str]:
    return [NAMES[i] if i < len(NAMES) else f"cap_{i}" for i in range(64) if mask >> i & 1]


def _masks(status_path: str = "/proc/thread-self/status") -> dict[str, int]:
    out = {}
    with open(status_path) as f:
        for line in f:
            key, _, value = line.partition(":")
            for name, field in _FIELDS.items():
                if key == field:
                    out[name] = int(value.strip(), 16)
    return out


def current(status_path: str = "/proc/thread-self/status") -> dict[str, list[str]]:
    """The calling thread's capability sets, by name."""
    return {k: _names(v) for k, v in _masks(status_path).items()}


def missing(required=REQUIRED) -> list[str]:
    """Required capabilities the calling thread does not have in its effective set."""
    eff = _masks()["effective"]
    return [c for c in required if not eff >> NUMBER[c] & 1]


def keep_for(program_types) -> set[str]:
    """What to keep for programs of these libbpf types."""
    keep = set(REQUIRED)
    if set(program_types) & NETWORK_PROGRAM_TYPES:
        keep.add("cap_net_admin")
    return keep


def drop(keep) -> dict:
    """Keep only `keep` (names); -> {"kept": [...], "dropped": [...], "bounding_set": bool}."""
    libc = C.CDLL(None, use_errno=True)
    before = _masks()
    keep_mask = sum(1 << NUMBER[c] for c in keep)
    tasks = len(os.listdir("/proc/self/task"))
    if tasks > 1:
        log.warning("dropping capabilities with %d threads running: only this thread drops them", tasks)
    bounding = bool(before["effective"] >> NUMBER["cap_setpcap"] & 1)
    if bounding:
        for cap in range(64):
            if before["bounding"] >> cap & 1 and not keep_mask >> cap & 1:
                if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                    raise OSError(C.get_errno(), f"PR_CAPBSET_DROP {cap}: {os.strerror(C.get_errno())}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)   # EINVAL before 4.3: nothing to clear
    mask = keep_mask & before["permitted"]
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)(_Data(mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0),
                       _Data(mask >> 32, mask >> 32, 0))
    if libc.capset(C.byref(header), data) != 0:
        err = C.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
    after = _masks()
    return {"kept": _names(after["effective"]),
            "dropped": _names(before["permitted"] & ~after["permitted"]),
            "bounding_set": bounding}
