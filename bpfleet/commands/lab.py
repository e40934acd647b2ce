"""`bpfleet lab`: real test hosts on this machine (network namespaces and QEMU VMs) with an
Ansible inventory, for rollouts and canaries without a real fleet. See docs/lab.md."""
from __future__ import annotations

import argparse
import functools
import json
import sys

from bpfleet.commands.args import count

EXIT_ERROR, EXIT_HOST_DOWN, EXIT_NO_LAB = 1, 1, 3


def add_parser(sub, registry_arg=None) -> None:
    p = sub.add_parser(
        "lab", help="test hosts on this machine: network namespaces and VMs, with an inventory",
        description="Real test hosts on this machine that Ansible reaches over SSH: network-"
        "namespace hosts (this kernel, native speed) and QEMU VMs (Debian bookworm's 6.1 kernel "
        "or bookworm-backports' 6.12, TCG). Each has its own sshd, hostname, /etc/bpfleet, /var/lib/bpfleet, /run/bpfleet, "
        "/opt/bpfleet and bpffs. Needs root.")
    lab_sub = p.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help="lab state directory (default $BPFLEET_LAB_DIR or "
                        "/var/lib/bpfleet-lab)")
    common.add_argument("--json", action="store_true", help="print the lab's status as JSON")

    up = lab_sub.add_parser(
        "up", parents=[common], help="start N hosts (K of them VMs), or add the missing ones",
        description="Bring the lab to N hosts in all, K of them VMs (N-K netns hosts). Hosts "
        "that already run are kept, dead ones restarted, missing ones added; asking for fewer "
        "hosts than run is an error (`lab down` first). Writes the Ansible inventory.")
    up.add_argument("hosts", type=count, metavar="N", help="hosts in all")
    up.add_argument("--vms", type=count, default=0, metavar="K",
                    help="how many of the N are QEMU VMs (default 0)")
    up.add_argument("--kernels", metavar="NAME[,NAME...]", help="the kernels the VMs boot, "
                    "VM i the i-th (cycling): bookworm (Debian's 6.1), backports (bookworm-"
                    "backports' 6.12) (default $BPFLEET_LAB_KERNELS or bookworm)")
    up.add_argument("--subnet", help="the netns hosts' private IPv4 subnet (default "
                    "$BPFLEET_LAB_SUBNET or 10.213.0.0/24)")
    up.add_argument("--prefix", help="name prefix of everything the lab creates (default "
                    "$BPFLEET_LAB_PREFIX or bpfleet)")
    up.add_argument("--port-base", type=count, help="VM i: ssh on 127.0.0.1:BASE+i, exporter "
                    "on BASE+100+i (default $BPFLEET_LAB_PORT_BASE or 42200)")
    up.set_defaults(run=run_up)
    st = lab_sub.add_parser("status", parents=[common], help="show the lab's hosts",
                            description="Exit 0: all hosts up; 1: some host is down; 3: no lab.")
    st.set_defaults(run=run_status)
    down = lab_sub.add_parser("down", parents=[common], help="stop and remove every lab host",
                              description="Stop everything `lab up` started and remove what it "
                              "created. Always safe to run.")
    down.set_defaults(run=run_down)


def _config(args, **kw):
    from orchestrator.lab import LabConfig
    return LabConfig.from_env(state_dir=args.state_dir, **kw)


def _print_status(s: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(s, indent=2))
        return
    if not s["up"]:
        print(f"no lab is up (state dir {s['state_dir']})")
        return
    print(f"{'HOST':16} {'KIND':5} {'SSH':20} {'EXPORTER':28} {'KERNEL':18} STATE")
    for h in s["hosts"]:
        print(f"{h['name']:16} {h['kind']:5} {h['address'] + ':' + str(h['ssh_port']):20} "
              f"{h['exporter_url']:28} {h['kernel'] or '?':18} {'up' if h['alive'] else 'DOWN'}")
    print(f"inventory: {s['inventory']}\nssh key:   {s['ssh_key']}")


def _guard(fn):
    @functools.wraps(fn)
    def wrapped(args) -> int:
        from orchestrator.lab import LabError
        try:
            return fn(args)
        except LabError as e:
            print(f"bpfleet lab {args.lab_command}: {e}", file=sys.stderr)
            return EXIT_ERROR
    return wrapped


@_guard
def run_up(args) -> int:
    from orchestrator.lab import lab
    cfg = _config(args, subnet=args.subnet, prefix=args.prefix, port_base=args.port_base,
                  vm_kernels=args.kernels)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else \
        (lambda m: print(m, flush=True))
    lab.up(cfg, args.hosts, args.vms, say=say)
    s = lab.status(cfg)
    if args.json:
        _print_status(s, True)
    else:
        say(f"lab up: {len(s['hosts'])} hosts; inventory {s['inventory']}\n"
            f"  try: ansible -i {s['inventory']} all -m ping\n"
            f"       {s['hosts'][0]['ssh']} hostname")
    return 0


@_guard
def run_status(args) -> int:
    from orchestrator.lab import lab
    s = lab.status(_config(args))
    _print_status(s, args.json)
    if not s["up"]:
        return EXIT_NO_LAB
    return 0 if all(h["alive"] for h in s["hosts"]) else EXIT_HOST_DOWN


@_guard
def run_down(args) -> int:
    from orchestrator.lab import lab
    removed = lab.down(_config(args), say=lambda m: None if args.json else print(m))
    if args.json:
        print(json.dumps({"removed": removed}))
    elif not removed:
        print("lab down: nothing was running")
    else:
        print(f"lab down: {len(removed)} host{'s' if len(removed) > 1 else ''} removed")
    return 0
