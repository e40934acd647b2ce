#!/usr/bin/env python3
"""The kernel matrix's workload: what every built-in program counts, done once. Standard library
only: it runs on this machine and, copied over SSH, in the lab VM. Prints a JSON summary.

  getppid x N_GETPPID      syscalls
  O_DIRECT write + read    biolatency, disksnoop (on the root block device, not tmpfs)
  loopback TCP connects    tcp, tcpv4connect
  execs of /bin/true       exec
  short sleeps             runqlat (wakeups)
  a memory-cgroup OOM      oomkill: a child in a throwaway cgroup capped at 16 MiB allocates
                           more; only that child is killed (cgroup v2, or v1's memory controller)
"""
import json
import mmap
import os
import socket
import subprocess
import sys
import tempfile
import time

N_GETPPID, IO_BYTES, CHUNK, CONNECTS, EXECS, SLEEPS = 5000, 8 << 20, 1 << 20, 20, 20, 50


def direct_io(directory="/var/tmp"):
    d = tempfile.mkdtemp(prefix="bpfleet-matrix-", dir=directory)
    path = os.path.join(d, "data")
    buf = mmap.mmap(-1, CHUNK)
    buf.write(b"x" * CHUNK)
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
        for _ in range(IO_BYTES // CHUNK):
            os.write(fd, buf)
        os.fsync(fd)
        os.close(fd)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        while os.readv(fd, [buf]) > 0:
            pass
        os.close(fd)
    finally:
        os.unlink(path)
        os.rmdir(d)


def connects(n=CONNECTS):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(n)
    for _ in range(n):
        c = socket.create_connection(srv.getsockname())
        a, _ = srv.accept()
        a.close()
        c.close()
    srv.close()


def _memcg():
    """(cgroup dir, file to write the limit to, procs file) of a new child memory cgroup."""
    name = f"bpfleet-matrix-{os.getpid()}"
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):          # v2
        try:   # without systemd nobody has delegated the memory controller to children yet
            with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
                f.write("+memory")
        except OSError:
            pass
        d = os.path.join("/sys/fs/cgroup", name)
        os.mkdir(d)
        try:
            with open(os.path.join(d, "memory.swap.max"), "w") as f:
                f.write("0")
        except OSError:
            pass      # no swap accounting: nothing to turn off
        return d, "memory.max", "cgroup.procs"
    own = next(l.split(":", 2)[2].strip() for l in open("/proc/self/cgroup") if ":memory:" in l)
    d = os.path.join("/sys/fs/cgroup/memory", own.lstrip("/"), name)  # v1
    os.mkdir(d)
    return d, "memory.limit_in_bytes", "cgroup.procs"


def oom():
    d, limit, procs = _memcg()
    try:
        with open(os.path.join(d, limit), "w") as f:
            f.write(str(16 << 20))
        child = ("import os,sys; open(sys.argv[1],'w').write(str(os.getpid())); "
                 "b=[bytearray(1<<20) for _ in range(256)]")
        r = subprocess.run([sys.executable, "-c", child, os.path.join(d, procs)], capture_output=True)
        return r.returncode
    finally:
        for _ in range(50):
            try:
                os.rmdir(d)
                break
            except OSError:
                time.sleep(0.1)


def main():
    t0, done = time.monotonic(), {}
    for _ in range(N_GETPPID):
        os.getppid()
    done["getppid"] = N_GETPPID
    direct_io()
    done["direct_io_bytes"] = 2 * IO_BYTES
    connects()
    done["connects"] = CONNECTS
    for _ in range(EXECS):
        subprocess.run(["/bin/true"], check=True)
    done["execs"] = EXECS
    for _ in range(SLEEPS):
        time.sleep(0.001)
    done["sleeps"] = SLEEPS
    done["oom_child_exit"] = oom()      # -9: killed by the OOM killer
    done["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(done))


if __name__ == "__main__":
    main()
