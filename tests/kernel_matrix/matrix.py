"""The kernel matrix as data, and docs/kernel-matrix.md rendered from it. Pure: one exporter
run's /status and two scrapes (before and after tests/kernel_matrix/workload.py) in, rows out;
only write_page touches a file, and only when the whole matrix passed.
"""
from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

# What each built-in program must count under the workload: (metric, label filter, at least).
# A new built-in program needs a line here (the test says so).
EXPECT = {
    "syscalls": ("syscalls_total", {"syscall": "getppid"}, 5000),
    "biolatency": ("bio_latency_seconds_count", {}, 1),
    "disksnoop": ("disksnoop_latency_seconds_count", {}, 1),
    "tcp": ("tcp_connections_total", {"direction": "passive"}, 20),
    "tcpv4connect": ("tcpv4connect_connects_total", {"daddr": "127.0.0.1"}, 20),
    "exec": ("exec_total", {}, 20),
    "runqlat": ("runq_latency_seconds_count", {}, 1),
    "oomkill": ("oom_kills_total", {}, 1),
}


def samples(text: str) -> list[tuple[str, dict, float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def total(smp: list, name: str, **labels) -> float:
    return sum(v for n, lbl, v in smp if n == name and all(lbl.get(k) == w for k, w in labels.items()))


@dataclass
class ProgramRow:
    program: str
    version: str | None
    state: str
    variant: str | None
    counted: float            # growth of the EXPECT metric over the workload
    wanted: float
    ns_per_event: float | None
    runs: int
    passed_over: list = field(default_factory=list)   # (variant, state, reason)
    note: str = ""            # error or not-applicable reason
    forced: str | None = None  # the variant the run's config forced, if any

    @property
    def ok(self) -> bool:
        return self.state == "attached" and self.counted >= self.wanted


def bcc_too_old(rows: list, is_bcc, reason: str) -> list:
    """Rows of bcc-source programs that bcc failed to compile keep their state, failed, as the
    exporter reports it, and say why with `reason` (a kernel newer than the distribution's bcc
    knows, e.g. bookworm's bcc 0.26 with 6.12's headers)."""
    out = []
    for r in rows:
        if is_bcc(r.program) and r.state == "failed" and "bcc could not compile" in r.note:
            r = ProgramRow(**{**r.__dict__, "note": f"{reason} (the exporter: {r.note.split(': ', 1)[-1]})"})
        out.append(r)
    return out


@dataclass
class KernelRun:
    kernel: str
    where: str
    rows: list
    workload: dict
    seconds: dict             # step -> seconds, for the report
    forced_rows: list = field(default_factory=list)  # ProgramRows of the variant_passes runs


def rows(status: dict, before: str, after: str) -> list[ProgramRow]:
    b, a = samples(before), samples(after)
    out = []
    for p in sorted(status["programs"], key=lambda p: p["name"]):
        name = p["name"]
        metric, labels, wanted = EXPECT.get(name, ("", {}, float("inf")))
        # Over the workload only (the scrapes before and after it): not the exporter's start.
        runtime = (total(a, "bpfleet_program_run_time_seconds_total", program=name)
                   - total(b, "bpfleet_program_run_time_seconds_total", program=name))
        runs = int(total(a, "bpfleet_program_run_count_total", program=name)
                   - total(b, "bpfleet_program_run_count_total", program=name))
        out.append(ProgramRow(
            name, p.get("version"), p["state"], p.get("variant"),
            total(a, metric, **labels) - total(b, metric, **labels) if metric else 0, wanted,
            runtime * 1e9 / runs if runs else None, runs,
            [(v["variant"], v["state"], v["reason"]) for v in p.get("variants", []) if v["state"] != "running"],
            p.get("error") or p.get("not_applicable") or "", p.get("variant_forced")))
    return out


def variant_passes(status: dict) -> list[dict[str, str]]:
    """The extra exporter runs that measure, side by side, every variant the kernel did not rule
    out (the running one and those it beat, not_tried): run i forces each program's i-th such
    variant, so all are measured in runs of the same shape. [] when no program has a second
    variant that could load here."""
    loadable = {p["name"]: [v["variant"] for v in p.get("variants", [])
                            if v["state"] in ("running", "not_tried")]
                for p in status["programs"] if p["state"] == "attached"}
    loadable = {name: vs for name, vs in loadable.items() if len(vs) > 1}
    return [{name: vs[i] for name, vs in loadable.items() if i < len(vs)}
            for i in range(max(map(len, loadable.values()), default=0))]


KERNELS = ("host", "vm", "vm-backports")   # the page's rows, in order


def why_not_write(runs: dict, failed: list[str]) -> str | None:
    """None when docs/kernel-matrix.md may be rewritten from `runs` (kernel -> KernelRun): every
    kernel ran and no kernel-matrix test failed. Else why the committed page stays as it is: a
    page with a row missing, or rows a failing test disowns, would replace a good one."""
    missing = [k for k in KERNELS if k not in runs]
    why = ([f"no {', '.join(missing)} run"] if missing else []) + \
        ([f"{len(failed)} kernel-matrix test(s) failed: {', '.join(failed)}"] if failed else [])
    return "; ".join(why) or None


def write_page(doc: Path, runs: dict, failed: list[str]) -> str:
    """Rewrite `doc` from `runs` if why_not_write allows it; -> the line for the test summary."""
    why = why_not_write(runs, failed)
    if why is not None:
        return f"{doc.name} NOT rewritten (the committed page stays): {why}"
    doc.write_text(render([runs[k] for k in KERNELS]))
    return f"wrote {doc.name}"


HEADER = """<!-- GENERATED FILE: written by the kernel-matrix test run (tests/kernel_matrix), never by hand.
     Regenerate: scripts/run-tests.sh tests/kernel_matrix -->
# Kernel matrix

**Generated by the test run `tests/kernel_matrix`** — do not edit; run the tests to update it.
Kernels: this machine's (CI host), and lab VMs (one image, `bpfleet lab`, [lab.md](lab.md)) on Debian
bookworm's kernel and bookworm-backports' kernel, each with its own headers.
On each kernel, one exporter loads every built-in program (the best attach variant the kernel
allows, [manifest.md](manifest.md#variants)), then `tests/kernel_matrix/workload.py` runs
(syscalls, O_DIRECT block I/O, loopback TCP connects, execs, sleeps, a memory-cgroup OOM kill).
"counted" is what the program's metric grew by under it; "ns/event" is the kernel's own
`bpf_stats` (run time / run count, all the program's BPF programs together). Under QEMU TCG the
guest runs 10–50× slower, so VM costs are for comparing programs on that row, not with the host.
Costs are over the workload only. Where a kernel allows more than one variant of a program, "Cost
by variant" compares them: each is forced (`[programs.<name>] variant = "..."`) in an extra
exporter run of just the programs with variants, under the same workload.
"""


def render(runs: list[KernelRun]) -> str:
    parts = [HEADER]
    for run in runs:
        parts.append(f"\n## {run.kernel} — {run.where}\n\n"
                     "| program | version | state | variant | counted (metric ≥ wanted) | ns/event | runs |\n"
                     "|---|---|---|---|---|---|---|\n")
        for r in run.rows:
            metric = EXPECT.get(r.program, ("?",))[0]
            counted = f"{r.counted:g} {metric} (≥ {r.wanted:g})" if r.state == "attached" else "—"
            ns = f"{r.ns_per_event:.0f}" if r.ns_per_event is not None else "—"
            parts.append(f"| {r.program} | {r.version or '—'} | {r.state} | {r.variant or '(no variants)'} "
                         f"| {counted} | {ns} | {r.runs} |\n")
        refused = [(r.program, v, s, why) for r in run.rows for v, s, why in r.passed_over]
        notes = [(r.program, r.state, r.note) for r in run.rows if r.note]
        if refused or notes:
            parts.append("\nPassed over, refused or not applicable, and why:\n\n")
            for prog, v, s, why in refused:
                parts.append(f"- {prog} / {v}: {s} — {why}\n")
            for prog, s, why in notes:
                parts.append(f"- {prog}: {s} — {why}\n")
        if run.forced_rows:
            parts.append(_variant_costs(run))
        work = ", ".join(f"{k} {v}" for k, v in run.workload.items())
        took = ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items())
        parts.append(f"\nWorkload: {work}. Time: {took}.\n")
    return "".join(parts)


def _variant_costs(run: KernelRun) -> str:
    """Every variant that loads here, side by side, each forced in an extra exporter run (just
    the programs with variants) under the same workload."""
    chosen = {r.program: r.variant for r in run.rows}
    rows = [(r, ("forced, the kernel's choice" if r.variant == chosen.get(r.program) else "forced")
             if r.variant == r.forced else f"forced {r.forced}, fell back") for r in run.forced_rows]
    out = ["\nCost by variant: every variant this kernel does not rule out, each forced in an "
           "extra exporter run of just the programs with variants, same workload. `ns/event` is per "
           "BPF program run; variants hook different places, so compare the BPF time too (run "
           "time over the workload, all the program's BPF programs):\n\n"
           "| program | variant | how | counted | ns/event | runs | BPF time (µs) |\n"
           "|---|---|---|---|---|---|---|\n"]
    for r, how in sorted(rows, key=lambda x: (x[0].program, x[0].variant or "")):
        ns = f"{r.ns_per_event:.0f}" if r.ns_per_event is not None else "—"
        total_us = f"{r.ns_per_event * r.runs / 1000:.0f}" if r.ns_per_event is not None else "—"
        counted = f"{r.counted:g} (≥ {r.wanted:g})" if r.state == "attached" else r.state
        out.append(f"| {r.program} | {r.variant or '—'} | {how} | {counted} | {ns} | {r.runs} | {total_us} |\n")
    return "".join(out)
