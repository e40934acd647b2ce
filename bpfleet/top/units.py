"""Human-readable numbers: time (ns/µs/ms/s), bytes (B/KiB/MiB/...), plain (k/M/G)."""
from __future__ import annotations

import math

_TIME = [(1e-9, "ns"), (1e-6, "µs"), (1e-3, "ms"), (1.0, "s")]
_BYTES = [(1.0, "B"), (1024.0, "KiB"), (1024.0 ** 2, "MiB"), (1024.0 ** 3, "GiB"),
          (1024.0 ** 4, "TiB"), (1024.0 ** 5, "PiB")]
_PLAIN = [(1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"), (1e15, "P")]
_SCALES = {"seconds": _TIME, "bytes": _BYTES, "": _PLAIN}


def unit_of(name: str) -> str:
    """The unit a metric's values are in, from its name: "seconds", "bytes" or "" (a count)."""
    base = name[:-len("_total")] if name.endswith("_total") else name
    if base.endswith("_seconds"):
        return "seconds"
    if base.endswith("_bytes"):
        return "bytes"
    return ""


def _sig(x: float) -> str:
    """Three significant digits, never an exponent, no trailing zeros (1.02, 16.4, 512)."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    digits = 2 - int(math.floor(math.log10(abs(x))))
    s = f"{x:.{max(digits, 0)}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def human(v: float | None, unit: str = "") -> str:
    """1.6e-05 -> "16µs", 0.001024 -> "1.02ms", 4096 bytes -> "4KiB", 12345 -> "12.3k"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    scales = _SCALES.get(unit, _PLAIN)
    a = abs(v)
    i = 0
    while i + 1 < len(scales) and a >= scales[i + 1][0]:
        i += 1
    # Rounding can carry into the next unit: 999.7µs prints as 1ms, not 1000µs.
    if (i + 1 < len(scales) and a / scales[i][0] >= 999.5
            and round(scales[i + 1][0] / scales[i][0]) == 1000):
        i += 1
    scale, suffix = scales[i]
    return _sig(v / scale) + suffix


def human_rate(v: float | None, unit: str = "") -> str:
    """A per-second rate: "12.3k/s", "1.5MiB/s", "2.3ms/s" (time spent per second)."""
    return "-" if v is None else human(v, unit) + "/s"


def count_text(v: float) -> str:
    """A bucket count as bcc prints it: an integer when it is one."""
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"
