"""The VM image: Debian bookworm debootstrap'ed into an ext4 qcow2 base with two kernels
(bookworm's 6.1 and bookworm-backports' 6.12), their modules and headers; per kernel an
uncompressed vmlinux and a busybox initramfs, so a VM boots either from the same disk. Built once per recipe into
<cache>/images/<key>/ (key = hash of RECIPE and the guest scripts), so CI rebuilds only when
the recipe changes. A build takes minutes (debootstrap); boots take seconds."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestrator.lab import guest
from orchestrator.lab.kernel import CHR, DIR, FILE, Entry, extract_vmlinux, load_order, \
    module_bytes, module_name, newc_archive, parse_modules_dep
from orchestrator.lab.system import LabError, VM_TOOLS, require_tools, run_logged

MIRROR = os.environ.get("BPFLEET_LAB_MIRROR", "http://deb.debian.org/debian")
RECIPE = {
    "format": 1,
    "suite": "bookworm",
    # Kernels a VM can boot (`lab up --kernels`), each resolved to its ABI package by the
    # guest's apt from its suite, with its modules and its headers installed into the one image
    # (CI builds the image on every run: one debootstrap, ~25 s more per extra kernel).
    "kernel_package": "linux-image-amd64",
    "kernels": {"bookworm": "bookworm", "backports": "bookworm-backports"},
    # python3(-venv): Ansible modules and a venv for the exporter; libbpf1: the exporter's libbpf.
    # linux-headers-amd64 (matching the image's kernel) and python3-bpfcc: bcc-source programs
    # compile in the VM; python3-tomli: the exporter runs from a copied source tree with the
    # system python3 (bcc lives in its dist-packages). One image for every lab VM: CI builds
    # it once (tests/kernel_matrix needs bcc, the rest do not mind it).
    "packages": ["openssh-server", "python3", "python3-venv", "bpftool", "iproute2", "kmod",
                 "procps", "libbpf1", "busybox-static", "linux-headers-amd64", "python3-bpfcc",
                 "python3-tomli"],
    # Module trees a VM never needs (saves ~200 MB of the ~390 MB).
    "prune_modules": ["drivers/gpu", "drivers/media", "drivers/net/wireless",
                      "drivers/net/ethernet", "drivers/infiniband", "drivers/staging",
                      "drivers/iio", "drivers/usb", "sound", "net/bluetooth", "net/wireless",
                      "net/mac80211"],
    "strip_paths": ["usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt",
                    "var/lib/apt/lists"],
    "disk_size_mb": 4096,
}


DEFAULT_KERNEL = next(iter(RECIPE["kernels"]))
KERNEL_NAMES = tuple(RECIPE["kernels"])


def recipe_key() -> str:
    text = json.dumps({"recipe": RECIPE, "init": guest.INIT, "files": guest.ROOTFS_FILES,
                       "stage1": guest.STAGE1_MODULES}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    key: str
    dir: str
    kernel_release: str     # the default kernel's, e.g. 6.1.0-56-amd64
    kernel_version: str     # its Debian package version, e.g. 6.1.192-2
    build_seconds: float
    # name -> {"release": ..., "version": ..., "suite": ...}; the first is the default
    kernels: dict = field(default_factory=dict)

    def boot(self, kernel: str | None = None) -> tuple[Path, Path, str]:
        """(vmlinux, initramfs, release) of a kernel by name (None: the default)."""
        name = kernel or DEFAULT_KERNEL
        if name not in self.kernels:
            raise LabError(f"VM kernel {name!r}: the image {self.key} has "
                           f"{', '.join(self.kernels) or 'none'}")
        return (Path(self.dir, f"vmlinux-{name}"), Path(self.dir, f"initramfs-{name}.cpio"),
                self.kernels[name]["release"])

    @property
    def base(self) -> Path:
        return Path(self.dir, "base.qcow2")

    def to_json(self) -> dict:
        return asdict(self)


def cached_image(cache_dir: Path) -> Image | None:
    d = Path(cache_dir, "images", recipe_key())
    try:
        return Image(**json.loads((d / "image.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def ensure_image(cache_dir: Path, say=print) -> Image:
    """The image for the current recipe, built first if it is not in the cache."""
    import fcntl
    images = Path(cache_dir, "images")
    images.mkdir(parents=True, exist_ok=True)
    key = recipe_key()
    with open(images / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # a second `lab up` waits for the first's build
        img = cached_image(cache_dir)
        if img:
            return img
        require_tools(VM_TOOLS)
        log = images / f"{key}.build.log"
        say(f"building the VM image {key} (debootstrap {RECIPE['suite']}; a few minutes, "
            f"log {log})")
        img = _Build(images, key, log, say).run()
    _prune(images, key)
    return img


def _prune(images: Path, keep: str) -> None:
    """Images of older recipes go (~500 MB each). A VM running from one keeps its open file."""
    for p in images.iterdir():
        if not p.name.startswith(keep):
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


class _Build:
    def __init__(self, images: Path, key: str, log: Path, say):
        self.work, self.dest, self.log, self.say = images / f"{key}.build", images / key, log, say
        self.key, self.step = key, ""

    def sh(self, *argv, timeout: float = 1800, **kw) -> str:
        try:
            p = run_logged(*argv, log=self.log, timeout=timeout, **kw)
        except LabError as e:
            raise LabError(f"VM image build failed ({self.step}): {e}; log {self.log}") from None
        if p.returncode != 0:
            tail = "\n    ".join(self.log.read_text(errors="replace").strip().splitlines()[-4:])
            raise LabError(f"VM image build failed ({self.step}): {p.args[0]} exit {p.returncode}:"
                           f"\n    {tail}\nfull log: {self.log}")
        return p.stdout

    def run(self) -> Image:
        t0 = time.monotonic()
        self.log.write_text(f"bpfleet lab VM image {self.key}\n{json.dumps(RECIPE, indent=1)}\n")
        shutil.rmtree(self.work, ignore_errors=True)
        out = self.work / "out"
        out.mkdir(parents=True)
        root = self.work / "rootfs"
        for step, fn in (("debootstrap", self.debootstrap), ("kernel", self.kernel),
                         ("configure", self.configure), ("initramfs", self.initramfs),
                         ("disk", self.disk)):
            self.step, t = step, time.monotonic()
            fn(root, out)
            self.say(f"  image: {step} done in {time.monotonic() - t:.0f} s")
        first = self.kernels[DEFAULT_KERNEL]
        img = Image(key=self.key, dir=str(self.dest), kernel_release=first["release"],
                    kernel_version=first["version"],
                    build_seconds=round(time.monotonic() - t0, 1), kernels=self.kernels)
        (out / "image.json").write_text(json.dumps(img.to_json(), indent=2) + "\n")
        shutil.rmtree(self.dest, ignore_errors=True)
        os.replace(out, self.dest)
        shutil.rmtree(self.work, ignore_errors=True)
        self.say(f"VM image {self.key} built in {img.build_seconds:.0f} s (kernels "
                 f"{', '.join(k['release'] for k in self.kernels.values())})")
        return img

    def debootstrap(self, root: Path, out: Path) -> None:
        self.sh("debootstrap", "--variant=minbase", "--include=" + ",".join(RECIPE["packages"]),
                RECIPE["suite"], root, MIRROR)

    def kernel(self, root: Path, out: Path) -> None:
        self.kernels = {}
        for name, suite in RECIPE["kernels"].items():
            self.kernels[name] = self.one_kernel(root, out, name, suite)

    def one_kernel(self, root: Path, out: Path, name: str, suite: str) -> dict:
        """Resolve, download and unpack one kernel; its modules into the image, its headers
        installed (from its own suite), its vmlinux extracted. The guest's own apt resolves
        it, whatever release this machine runs."""
        extra = root / "etc/apt/sources.list.d/bpfleet-kernel.list"
        if suite != RECIPE["suite"]:
            extra.write_text(f"deb {MIRROR} {suite} main\n")
            self.sh("chroot", root, "apt-get", "update", "-q")
        deps = self.sh("chroot", root, "apt-cache", "-t", suite, "depends",
                       RECIPE["kernel_package"])
        pkg = next((l.split(":", 1)[1].strip() for l in deps.splitlines()
                    if l.strip().startswith("Depends: linux-image-")), None)
        if not pkg:
            raise LabError(f"VM image build failed (kernel {name}): no linux-image in {deps!r}; "
                           f"log {self.log}")
        self.sh("chroot", root, "sh", "-c", f"cd /tmp && apt-get download -t {suite} {pkg}")
        deb = next((root / "tmp").glob(f"{pkg}_*.deb"))
        version = deb.name.split("_")[1]
        kdir = self.work / f"kernel-{name}"
        self.sh("dpkg-deb", "-x", deb, kdir)
        deb.unlink()
        (vmlinuz,) = (kdir / "boot").glob("vmlinuz-*")
        release = vmlinuz.name[len("vmlinuz-"):]
        if suite != RECIPE["suite"]:     # the default kernel's came with debootstrap
            self.headers(root, suite, release)
            extra.unlink()
        (out / f"vmlinux-{name}").write_bytes(extract_vmlinux(vmlinuz.read_bytes()))
        mods = kdir / "lib/modules" / release
        for p in RECIPE["prune_modules"]:
            shutil.rmtree(mods / "kernel" / p, ignore_errors=True)
        # dirs_exist_ok: the headers package made <release>/build already
        shutil.copytree(mods, root / "usr/lib/modules" / release, symlinks=True,
                        dirs_exist_ok=True)
        if not (root / "usr/src" / f"linux-headers-{release}").is_dir():
            raise LabError(f"VM image build failed (kernel {name}): no headers installed for "
                           f"{release}; log {self.log}")
        for f in (kdir / "boot").glob(f"*-{release}"):
            if not f.name.startswith("vmlinuz"):
                shutil.copy2(f, root / "boot" / f.name)
        self.sh("depmod", "-b", root, release)
        shutil.rmtree(kdir)
        return {"release": release, "version": version, "suite": suite}

    def headers(self, root: Path, suite: str, release: str) -> None:
        """linux-headers-<release> from `suite` without its kernel image: the headers package
        depends on linux-image-<release>, whose postinst would pull initramfs-tools and udev
        and build an initrd nobody boots; the image's modules come from the unpacked .deb."""
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        want, debs, others = [f"linux-headers-{release}"], [], []
        while want:      # the linux-* closure as .debs; everything else through apt
            pkg = want.pop()
            debs.append(pkg)
            for line in self.sh("chroot", root, "apt-cache", "-t", suite, "depends",
                                pkg).splitlines():
                dep = line.strip().lstrip("|").split(":", 1)
                if dep[0] != "Depends" or "<" in dep[1]:
                    continue
                name = dep[1].strip()
                if name.startswith("linux-image-"):
                    continue
                if name.startswith(("linux-headers-", "linux-kbuild-")):
                    want += [name] if name not in debs + want else []
                elif name not in others:
                    others.append(name)
        self.sh("chroot", root, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                "-t", suite, *others, env=env)
        self.sh("chroot", root, "sh", "-c", f"cd /tmp && apt-get download -t {suite} "
                + " ".join(debs))
        files = [f"/tmp/{p.name}" for d in debs for p in (root / "tmp").glob(f"{d}_*.deb")]
        image = f"linux-image-{release}"       # --ignore-depends names the dependency
        self.sh("chroot", root, "dpkg", "-i", f"--ignore-depends={image},{image}-unsigned",
                *files, env=env)
        for f in files:
            (root / f.lstrip("/")).unlink()

    def configure(self, root: Path, out: Path) -> None:
        for rel, (mode, text) in guest.ROOTFS_FILES.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.unlink(missing_ok=True)       # resolv.conf may be a copy or a link
            p.write_text(text)
            p.chmod(mode)
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()                    # each VM gets its own through fw_cfg
        for rel in RECIPE["strip_paths"]:
            shutil.rmtree(root / rel, ignore_errors=True)
            (root / rel).mkdir(parents=True, exist_ok=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)

    def initramfs(self, root: Path, out: Path) -> None:
        for name, k in self.kernels.items():
            (out / f"initramfs-{name}.cpio").write_bytes(self.one_initramfs(root, k["release"]))

    def one_initramfs(self, root: Path, release: str) -> bytes:
        mods = root / "usr/lib/modules" / release
        builtin = {module_name(l) for l in (mods / "modules.builtin").read_text().split()}
        order = load_order(guest.STAGE1_MODULES, parse_modules_dep((mods / "modules.dep")
                                                                   .read_text()), builtin)
        entries = [Entry("bin", DIR | 0o755), Entry("dev", DIR | 0o755),
                   Entry("dev/console", CHR | 0o600, rdev=(5, 1)), Entry("modules", DIR | 0o755),
                   Entry("bin/busybox", FILE | 0o755, (root / "bin/busybox").read_bytes()),
                   Entry("init", FILE | 0o755, guest.INIT.encode())]
        names = []
        for path in order:
            names.append(module_name(path) + ".ko")
            entries.append(Entry(f"modules/{names[-1]}", FILE | 0o644,
                                 module_bytes(path, (mods / path).read_bytes())))
        entries.append(Entry("modules.list", FILE | 0o644, ("\n".join(names) + "\n").encode()))
        return newc_archive(entries)

    def disk(self, root: Path, out: Path) -> None:
        raw = self.work / "root.ext4"
        self.sh("mkfs.ext4", "-q", "-F", "-L", "bpfleet-root", "-d", root, raw,
                f"{RECIPE['disk_size_mb']}M")
        self.sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out / "base.qcow2")
        raw.unlink()
