"""Where the lab lives and which names and addresses it uses. Every name the lab creates on
this machine (namespaces, links, host names) starts with `prefix`, so two labs with different
prefixes, subnets, ports and state dirs can run side by side (the tests use their own)."""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.lab.system import LabError

DEFAULT_STATE_DIR = Path("/var/lib/bpfleet-lab")
DEFAULT_CACHE_DIR = Path("/var/cache/bpfleet-lab")
DEFAULT_SUBNET = "10.213.0.0/24"
DEFAULT_PORT_BASE = 42200
# The per-host directories (plan.HOST_DIRS, repeated here to avoid an import cycle).
SHADOWED_DIRS = ("/etc/bpfleet", "/var/lib/bpfleet", "/run/bpfleet", "/opt/bpfleet",
                 "/var/log/bpfleet")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")   # bridge "<prefix>-br0" must fit IFNAMSIZ (15)


@dataclass(frozen=True)
class LabConfig:
    state_dir: Path = DEFAULT_STATE_DIR
    cache_dir: Path = DEFAULT_CACHE_DIR
    prefix: str = "bpfleet"
    subnet: str = DEFAULT_SUBNET
    # VM i forwards 127.0.0.1:<port_base + i> to its sshd and <port_base + 100 + i> to :9436.
    port_base: int = DEFAULT_PORT_BASE
    vm_memory_mb: int = 512
    # The kernels VMs boot, by image kernel name (image.RECIPE["kernels"]): VM i boots
    # vm_kernels[(i - 1) % len], so ("bookworm", "backports") alternates them.
    vm_kernels: tuple = ("bookworm",)
    vm_boot_timeout: float = 420.0

    def __post_init__(self):
        object.__setattr__(self, "state_dir", Path(self.state_dir))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        if not PREFIX_RE.match(self.prefix):
            raise LabError(f"lab prefix {self.prefix!r}: expected 1-8 lowercase letters/digits, "
                           "starting with a letter")
        try:
            net = ipaddress.ip_network(self.subnet)
        except ValueError as e:
            raise LabError(f"lab subnet {self.subnet!r}: {e}") from None
        if net.version != 4 or net.prefixlen > 28 or not net.is_private:
            raise LabError(f"lab subnet {self.subnet!r}: expected a private IPv4 network of /28 "
                           "or larger (e.g. 10.213.0.0/24)")
        for d in SHADOWED_DIRS:   # a host's sshd reads its config and keys from the state dir
            if self.state_dir == Path(d) or Path(d) in self.state_dir.parents:
                raise LabError(f"lab state dir {self.state_dir} is inside {d}, which every lab "
                               "host mounts its own copy over: choose another")
        from orchestrator.lab.image import KERNEL_NAMES
        kernels = self.vm_kernels
        if isinstance(kernels, str):
            kernels = [k.strip() for k in kernels.split(",")]
        object.__setattr__(self, "vm_kernels", tuple(kernels))
        bad = [k for k in self.vm_kernels if k not in KERNEL_NAMES]
        if bad or not self.vm_kernels:
            raise LabError(f"lab VM kernels {','.join(self.vm_kernels)!r}: expected a comma-"
                           f"separated list of {', '.join(KERNEL_NAMES)}")
        if not 1024 <= self.port_base <= 65000:
            raise LabError(f"lab port base {self.port_base}: expected 1024..65000")

    @classmethod
    def from_env(cls, **overrides) -> "LabConfig":
        """Defaults, then $BPFLEET_LAB_DIR, _CACHE, _PREFIX, _SUBNET, _PORT_BASE, _KERNELS, then
        overrides that are not None."""
        env = os.environ
        kw = {"state_dir": env.get("BPFLEET_LAB_DIR"), "cache_dir": env.get("BPFLEET_LAB_CACHE"),
              "prefix": env.get("BPFLEET_LAB_PREFIX"), "subnet": env.get("BPFLEET_LAB_SUBNET"),
              "port_base": env.get("BPFLEET_LAB_PORT_BASE"),
              "vm_kernels": env.get("BPFLEET_LAB_KERNELS")}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        kw = {k: v for k, v in kw.items() if v not in (None, "")}
        if "port_base" in kw:
            try:
                kw["port_base"] = int(kw["port_base"])
            except ValueError:
                raise LabError(f"lab port base {kw['port_base']!r}: not an integer") from None
        return cls(**kw)

    def to_json(self) -> dict:
        d = asdict(self)
        d["state_dir"], d["cache_dir"] = str(self.state_dir), str(self.cache_dir)
        d["vm_kernels"] = list(self.vm_kernels)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "LabConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    # Names and paths derived from the config (one place, so `down` finds what `up` made).
    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br0"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.subnet)

    @property
    def gateway(self) -> str:
        """This machine's address on the lab bridge: the subnet's first address."""
        return str(self.network.network_address + 1)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def inventory_file(self) -> Path:
        return self.state_dir / "inventory.ini"

    @property
    def key_file(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"

    def vm_kernel(self, index: int) -> str:
        """The kernel name VM `index` (1-based) boots."""
        return self.vm_kernels[(index - 1) % len(self.vm_kernels)]

    def host_dir(self, name: str) -> Path:
        return self.state_dir / "hosts" / name
