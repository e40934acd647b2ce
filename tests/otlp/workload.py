"""A process the OTLP tests drive, one command per stdin line, answering one JSON line each:

    getppid N          N getppid() calls
    write FD_SIZES     write() to /dev/null: "300x5,4096x2" is five 300-byte and two 4096-byte writes
    exec PATH N        run PATH N times (fork + exec), answering their pids
    io                 write and fsync 1 MiB to a file next to this script's cwd (block I/O)

Between commands it blocks in read(): with the otlpt program watching its pid, every counter
holds still until the next command.
"""
import json
import os
import subprocess
import sys

null = os.open("/dev/null", os.O_WRONLY)
print(json.dumps({"pid": os.getpid(), "fd": null}), flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    out = {}
    if cmd == "getppid":
        for _ in range(int(args[0])):
            os.getppid()
    elif cmd == "write":
        for item in args[0].split(","):
            size, times = (int(x) for x in item.split("x"))
            buf = b"x" * size
            for _ in range(times):
                os.write(null, buf)
    elif cmd == "exec":
        pids = []
        for _ in range(int(args[1])):
            p = subprocess.Popen([args[0]])
            pids.append(p.pid)
            p.wait()
        out["pids"] = pids
    elif cmd == "io":
        with open("otlp-io.bin", "wb") as f:
            f.write(os.urandom(1 << 20))
            f.flush()
            os.fsync(f.fileno())
        os.unlink("otlp-io.bin")
    print(json.dumps(out), flush=True)
