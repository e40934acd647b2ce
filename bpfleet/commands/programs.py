"""`bpfleet programs build|check|list`: the registry from the command line."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bpfleet.commands.args import knob
from orchestrator import build
from core import registry as reg, resources
from core.problems import ProblemsError


def add_parser(sub, registry_arg) -> None:
    p = sub.add_parser("programs", help="build, check and list registry programs",
                       description="Build program directories into the registry, validate "
                       "manifests against their objects' BTF, list what the registry holds.")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    b = psub.add_parser("build", help="compile program directories into the registry",
                        description="Compile each DIR (holding <name>.bpf.c and manifest.toml) with "
                        "clang against vmlinux.h, check its manifest against the object's BTF and "
                        "publish it as <registry>/<name>/<version>/. Rebuilding a released version "
                        "with different content is an error. Without DIR, builds the built-in programs.")
    b.add_argument("dirs", nargs="*", metavar="DIR", type=Path)
    b.add_argument("-I", "--include", action="append", default=[], type=Path,
                   help="extra include directory (the built-in one has vmlinux.h and bpfleet.h)")
    b.add_argument("--json", action="store_true", help="print results as JSON")
    registry_arg(b)
    b.set_defaults(run=run_build)

    c = psub.add_parser("check", help="validate manifests against their objects' BTF",
                        description="Check every program in the registry (or only NAME[@VERSION] "
                        "arguments): map exists, field exists, type fits, decoder applies. Reports "
                        "all problems at once, each with file and field; exits 1 if any.")
    c.add_argument("refs", nargs="*", metavar="NAME[@VERSION]")
    c.add_argument("--json", action="store_true", help="print results as JSON")
    registry_arg(c)
    c.set_defaults(run=run_check)

    k = psub.add_parser("keygen", help="create an ed25519 release key pair",
                        description="Write DIR/release.key (private, mode 0600) and DIR/release.pub. "
                        "Sign artifacts with the private key; give hosts the public one "
                        "(exporter config: trusted_keys).")
    k.add_argument("dir", metavar="DIR", type=Path)
    k.set_defaults(run=run_keygen)

    sg = psub.add_parser("sign", help="sign NAME@VERSION in the registry",
                         description="Sign an artifact's digest with an ed25519 private key; the "
                         "signature is stored beside it as signature.ed25519. Exporters with "
                         "trusted_keys refuse unsigned or wrongly signed artifacts.")
    sg.add_argument("refs", nargs="+", metavar="NAME@VERSION")
    sg.add_argument("--key", required=True, type=Path, help="ed25519 private key (PEM)")
    registry_arg(sg)
    sg.set_defaults(run=run_sign)

    v = psub.add_parser("verify", help="load NAME@VERSION into this kernel without attaching it",
                        description="Everything a load does except attach: digests (and signature with "
                        "--trusted-key), manifest against BTF, kernel probe, knobs, the verifier. Nothing "
                        "runs and nothing stays loaded. Exit 0 if this kernel accepts the program, 1 if "
                        "not (with the reason, and the verifier log's tail). The rollout preflight runs this.")
    v.add_argument("ref", metavar="NAME@VERSION")
    v.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="knob value (integer or true/false); repeatable")
    v.add_argument("--trusted-key", action="append", default=[], type=Path, metavar="PUBKEY",
                   help="refuse the artifact unless signed by this ed25519 public key")
    v.add_argument("--exporter-config", metavar="FILE", help="also refuse what an exporter with this "
                   "config would refuse for its signature (its trusted_keys); the rollout preflight "
                   "passes the host's own config")
    v.add_argument("--variant", metavar="NAME", help="try this attach variant first "
                   "(docs/manifest.md#variants); the report says which one would run")
    v.add_argument("--btf", metavar="FILE", help="external BTF file for CO-RE on a kernel "
                   "without its own BTF (btfhub style)")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    registry_arg(v)
    v.set_defaults(run=run_verify)

    ls = psub.add_parser("list", help="list programs and versions in the registry")
    ls.add_argument("--json", action="store_true", help="print as JSON")
    registry_arg(ls)
    ls.set_defaults(run=run_list)


def run_build(args) -> int:
    dirs = args.dirs or sorted(d for d in resources.programs_dir().iterdir() if (d / "manifest.toml").is_file())
    registry = Path(args.registry)
    registry.mkdir(parents=True, exist_ok=True)
    results = [build.build_dir(d, registry, args.include) for d in dirs]
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            if r.problems:
                print(f"FAIL  {r.ref or r.source}", file=sys.stderr)
                for p in r.problems:
                    print(f"      {p}", file=sys.stderr)
            else:
                print(f"{r.status:<9} {r.ref:<24} sha256:{r.digest}")
    return 1 if any(r.problems for r in results) else 0


def run_check(args) -> int:
    registry = Path(args.registry)
    refs = args.refs or reg.names(registry)
    report, failed = [], False
    for ref in refs:
        name, _, version = ref.partition("@")
        for v in ([version] if version else reg.versions(registry, name) or ["latest"]):
            try:
                problems = build.check_artifact(reg.resolve(registry, name, v))
            except ProblemsError as e:
                problems = e.problems
            failed |= bool(problems)
            report.append({"program": f"{name}@{v}", "ok": not problems,
                           "problems": [p.as_dict() for p in problems]})
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for r in report:
            print(f"{'ok' if r['ok'] else 'FAIL':<5} {r['program']}")
            for p in r["problems"]:
                where = f"{p['file']}: {p['field']}" if p["field"] else p["file"]
                print(f"      {where}: {p['message']}")
        if not report:
            print(f"registry {registry} is empty", file=sys.stderr)
    return 1 if failed or not report else 0


def run_list(args) -> int:
    registry = Path(args.registry)
    rows = [{"name": n, "version": v, "digest": reg.read_index(registry / n / v).get("digest")}
            for n in reg.names(registry) for v in reg.versions(registry, n)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:<16} {r['version']:<10} sha256:{r['digest']}")
    return 0


def run_keygen(args) -> int:
    from core import signing
    priv, pub = args.dir / "release.key", args.dir / "release.pub"
    if priv.exists():
        print(f"bpfleet programs keygen: {priv} exists; not overwriting a key", file=sys.stderr)
        return 1
    signing.generate(priv, pub)
    print(f"private key {priv}\npublic key  {pub}")
    return 0


def run_sign(args) -> int:
    from core import signing
    registry, failed = Path(args.registry), False
    for ref in args.refs:
        name, _, version = ref.partition("@")
        try:
            artifact = reg.resolve(registry, name, version or "latest")
            out = reg.sign(artifact, args.key)
            print(f"signed {artifact.ref} sha256:{artifact.digest} -> {out}")
        except (ProblemsError, signing.SignatureError) as e:
            print(f"bpfleet programs sign: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def run_verify(args) -> int:
    from exporter.load import loader
    from exporter.load.errors import LoadError, NotApplicableOnHost
    name, _, version = args.ref.partition("@")
    result = {"program": args.ref, "kernel": os.uname().release, "ok": False, "error": None,
              "verifier_log": None}
    try:
        knobs = dict(knob(k) for k in args.knob)
        if args.btf:
            from exporter.libbpf.features import btf_file_error
            if not os.path.isfile(args.btf):
                raise ValueError(f"--btf {args.btf}: no such file")
            if (why := btf_file_error(args.btf)) is not None:
                raise ValueError(f"--btf {args.btf}: not a BTF file: {why}")
        artifact = reg.resolve(Path(args.registry), name, version or "latest", args.trusted_key)
        if args.exporter_config:    # the host's own policy, whatever the caller trusts
            from exporter.config import load as load_config
            host_keys = [Path(k) for k in load_config(args.exporter_config).trusted_keys]
            artifact = reg.resolve(Path(args.registry), artifact.name, artifact.version, host_keys or None)
        result["program"], result["digest"] = artifact.ref, artifact.digest
        _plan, result["variant"], verdicts = loader.verify(loader.read(artifact), knobs, "--knob",
                                                           args.variant, args.btf)
        result["variants"] = [v.as_dict() for v in verdicts]
        result["ok"] = True
    except (ValueError, ProblemsError) as e:
        result["error"] = str(e)
    except NotApplicableOnHost as e:   # a bcc-source program on a host without kernel headers
        result["ok"], result["not_applicable"] = True, e.message
    except LoadError as e:
        result["error"], result["verifier_log"] = f"{e.where}: {e.message}", e.log_tail or None
        result["variants"] = [v.as_dict() for v in e.variants]
    if args.json:
        print(json.dumps(result, indent=2))
    elif result.get("not_applicable"):
        print(f"n/a   {result['program']} on {result['kernel']}: {result['not_applicable']}")
    elif result["ok"]:
        print(f"ok    {result['program']} loads on {result['kernel']} (not attached)"
              + (f", variant {result['variant']}" if result.get("variant") else ""))
        for v in result.get("variants", ()):
            if v["state"] != "running":
                print(f"      variant {v['variant']}: {v['state']}: {v['reason']}")
    else:
        print(f"FAIL  {result['program']} on {result['kernel']}: {result['error']}", file=sys.stderr)
        if result["verifier_log"]:
            print("      " + result["verifier_log"].replace("\n", "\n      "), file=sys.stderr)
    return 0 if result["ok"] else 1
