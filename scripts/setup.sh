#!/usr/bin/env bash
# Idempotent machine setup for bpfleet, sourced by run-exporter.sh and run-tests.sh.
# Installs Debian packages, mounts the kernel filesystems BPF needs, creates the
# virtualenv and builds the program registry. Safe to run again and again.
set -euo pipefail

BPFLEET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BPFLEET_ROOT
VENV="$BPFLEET_ROOT/.venv"
EXTRAS="all,test"
export BPFLEET_REGISTRY=${BPFLEET_REGISTRY:-/var/lib/bpfleet/registry}

# The Debian packages to install: the `install` rows of scripts/debian-packages.txt, the one
# list of what the code needs from the machine (tests/setup/test_machine_needs.py keeps it true).
mapfile -t APT_PACKAGES < <(awk '!/^#/ && $2 == "install" { print $1 }' \
                             "$BPFLEET_ROOT/scripts/debian-packages.txt")
if [ ${#APT_PACKAGES[@]} -eq 0 ]; then
    echo "bpfleet setup: no packages read from $BPFLEET_ROOT/scripts/debian-packages.txt" >&2
    exit 1
fi

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "bpfleet setup: run as root (or with sudo): BPF programs are loaded into the kernel" >&2
        exit 1
    fi
}

install_apt_packages() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The prometheus package would start a server through its init script; a policy-rc.d
    # keeps package installs from starting services (tests start their own, on their own port).
    local own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}

mount_kernel_filesystems() {
    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
    mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
    mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug || true
}

create_venv() {
    # Debian's python3 with system site packages: bcc's Python bindings come from
    # python3-bpfcc (never from PyPI, whose "bcc" is an unrelated project).
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtualenv $VENV"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
    fi
    local stamp="$VENV/.pyproject.sha256"
    local want
    want=$( (cat "$BPFLEET_ROOT/pyproject.toml"; echo "$EXTRAS") | sha256sum | cut -d" " -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        # This machine is the control machine and runs the tests: every extra (pyproject.toml:
        # exporter, otlp, signing, control, dashboards) and the test tools. Editable, so
        # core/resources.py finds programs/ and playbooks/ in this checkout.
        say "pip install -e .[$EXTRAS]"
        "$VENV/bin/pip" install -q --disable-pip-version-check -e "$BPFLEET_ROOT[$EXTRAS]"
        echo "$want" > "$stamp"
    fi
}

build_registry() {
    say "building programs into $BPFLEET_REGISTRY"
    "$VENV/bin/bpfleet" programs build --registry "$BPFLEET_REGISTRY"
}

# Everything but the registry: the tests build their own registries in temporary directories.
bpfleet_setup_machine() {
    require_root
    install_apt_packages
    mount_kernel_filesystems
    create_venv
}
