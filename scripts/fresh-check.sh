#!/usr/bin/env bash
# The fresh-machine check: does a new user's clean Debian 12 get from the README to a running
# exporter and passing tests? Makes a clean Debian 12 root (debootstrap minbase + git; the base is
# cached), clones this repository's HEAD into it, binds /proc, /sys (bpffs, tracefs, cgroup come
# along) and /dev, and runs the README's two commands there exactly as written: the run command
# with --check, the test command on a smoke selection that needs every kind of setup.
#
#   scripts/fresh-check.sh                  # the smoke selection below
#   scripts/fresh-check.sh tests/setup -x   # other pytest arguments for the test command
#   FRESH_KEEP=1 scripts/fresh-check.sh     # keep the root afterwards (to look around in it)
#   FRESH_REBUILD=1 scripts/fresh-check.sh  # build the cached base again
#
# Run as root on a machine set up by scripts/setup.sh (it needs debootstrap and git). Takes
# 25-40 minutes on 2 CPUs: too slow for every CI run, required before resolving anything that
# touches setup, the lab or a tool the code runs. The last line says what passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=bookworm
MIRROR=${FRESH_MIRROR:-http://deb.debian.org/debian}
CACHE=${FRESH_CACHE:-/var/cache/bpfleet-fresh}
WORK=${FRESH_WORK:-/var/tmp/bpfleet-fresh}
ROOT=$WORK/root
CLONE=/root/bpfleet
# Every kind of setup: the tool table, the walkthrough (registry, exporter, workload), a lab VM
# (image built from scratch inside the root), one e2e rollout through real Ansible.
SMOKE=(tests/setup tests/integration/test_walkthrough.py tests/lab/test_lab_vm.py
       "tests/e2e/test_rollouts_netns.py::test_good_version_reaches_every_netns_host")

say() { printf '\033[1m[fresh-check]\033[0m %s\n' "$*"; }
die() { printf 'fresh-check: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/setup.sh first"

base_tarball() {
    local tar=$CACHE/$SUITE-minbase-git.tar
    if [ -s "$tar" ] && [ -z "${FRESH_REBUILD:-}" ]; then echo "$tar"; return; fi
    local tmp=$CACHE/build.$$
    mkdir -p "$CACHE" && rm -rf "$tmp"
    say "debootstrap --variant=minbase --include=git $SUITE (cached in $tar)" >&2
    debootstrap --variant=minbase --include=git "$SUITE" "$tmp" "$MIRROR" >&2
    tar -C "$tmp" -cf "$tar.part" . && mv "$tar.part" "$tar" && rm -rf "$tmp"
    echo "$tar"
}

# What every fresh machine of this kind has and a debootstrap'ed root lacks: the package
# registries' plumbing (CA bundle, local apt and pip configuration, PIP_* variables).
copy_registry_plumbing() {
    mkdir -p "$ROOT/usr/local/share/ca-certificates" "$ROOT/etc/ssl" "$ROOT/root/.config"
    cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
    cp -aL /etc/ssl/certs "$ROOT/etc/ssl/"
    [ -e /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
    [ -d /root/.config/pip ] && cp -a /root/.config/pip "$ROOT/root/.config/"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null \
        && rm -f "$ROOT/etc/apt/sources.list"
    local f
    for f in /etc/apt/apt.conf.d/*; do   # the machine's own apt settings: no package owns them
        dpkg-query -S "$f" >/dev/null 2>&1 || cp "$f" "$ROOT/etc/apt/apt.conf.d/"
    done
}

mount_root() {
    mount --bind "$ROOT" "$ROOT"            # `ip netns` needs the root to be a mount point
    mount -t proc proc "$ROOT/proc"
    mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys"
    mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev"
}

cleanup() {
    local rc=$?
    if mountpoint -q "$ROOT" 2>/dev/null; then
        # Whatever the tests left running inside the root goes first, then the mounts.
        local pid
        for pid in $(ls /proc | grep -E '^[0-9]+$'); do
            [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "$pid" 2>/dev/null
        done
        umount -R "$ROOT" 2>/dev/null || umount -lR "$ROOT" 2>/dev/null || true
    fi
    if [ -z "${FRESH_KEEP:-}" ] && ! mountpoint -q "$ROOT" 2>/dev/null; then rm -rf "$WORK"; fi
    exit "$rc"
}

# The README's commands, exactly as written: the indented line under "## Run it" and under
# "## Test it".
readme_command() {
    awk -v h="## $1" '$0 == h { on = 1; next } /^## / { on = 0 } on && /^    [^ ]/ { sub(/^    /, ""); print; exit }' \
        "$REPO/README.md"
}

in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        $(env | grep -E '^PIP_[A-Z_]+=' | tr '\n' ' ') \
        /bin/bash -c "cd $CLONE && $1"
}

main() {
    local run_cmd test_cmd tar started=$SECONDS
    run_cmd=$(readme_command "Run it") && [ -n "$run_cmd" ] || die "README.md: no command under '## Run it'"
    test_cmd=$(readme_command "Test it") && [ -n "$test_cmd" ] || die "README.md: no command under '## Test it'"
    local smoke=("${SMOKE[@]}")
    [ $# -gt 0 ] && smoke=("$@")

    tar=$(base_tarball)
    trap cleanup EXIT
    [ -d "$ROOT" ] && { umount -R "$ROOT" 2>/dev/null || true; rm -rf "$WORK"; }
    mkdir -p "$ROOT" && tar -C "$ROOT" -xf "$tar"
    copy_registry_plumbing
    git clone -q "$REPO" "$ROOT$CLONE"
    say "clean $SUITE root at $ROOT, $(git -C "$REPO" rev-parse --short HEAD) cloned to $CLONE"
    mount_root

    say "1/2: $run_cmd --check"
    in_root "$run_cmd --check" || { say "FAILED: the run command ($run_cmd --check)"; return 1; }
    say "2/2: $test_cmd ${smoke[*]}"
    in_root "$test_cmd ${smoke[*]}" || { say "FAILED: the test command ($test_cmd ${smoke[*]})"; return 1; }
    say "PASSED on a clean Debian $SUITE root: '$run_cmd --check' and '$test_cmd ${smoke[*]}'" \
        "at $(git -C "$REPO" rev-parse --short HEAD) in $(( (SECONDS - started) / 60 )) min"
}

main "$@"
