"""exporter/kallsyms.py: /proc/kallsyms into the ksym decoder, read once, again when modules change."""
from __future__ import annotations

import pytest

from core.decoders import DECODERS, FieldKind
from core.decoders import kernel
from exporter import kallsyms

U64 = FieldKind("int", 8)
SYNTHETIC = b"""\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81001040 t schedule_tail
ffffffff81000800 T schedule
0000000000000000 A fixed_percpu_data
ffffffffc0a01000 t nft_do_chain\t[nf_tables]
ffffffff81002000 D jiffies
"""


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def files(tmp_path):
    (tmp_path / "kallsyms").write_bytes(SYNTHETIC)
    (tmp_path / "modules").write_text("nf_tables 1 0 - Live 0xffffffffc0a00000\n")
    return tmp_path


def test_parse_sorts_by_address_and_leaves_out_zero_addresses():
    table = kallsyms.parse(SYNTHETIC.splitlines())
    assert list(table.addresses) == sorted(table.addresses) and len(table) == 6
    assert [table.lookup(a) for a in (0xffffffff80ffffff, 0xffffffff81000000, 0xffffffff810007ff,
                                      0xffffffff81000800, 0xffffffff81001040, 0xffffffff81002010,
                                      0xffffffffc0a01004)] == \
        [None, "_text", "_text", "schedule", "schedule_tail", "jiffies", "nft_do_chain"]


def test_read_lazily_once_and_again_when_modules_change(files):
    clock = FakeClock()
    symbols = kallsyms.Kallsyms(str(files / "kallsyms"), str(files / "modules"), clock)
    assert symbols.loads == 0
    assert symbols.lookup(0xffffffff81000900) == "schedule" and symbols.loads == 1
    (files / "kallsyms").write_bytes(SYNTHETIC + b"ffffffffc0b00000 t xt_new\t[xt_new]\n")
    clock.now += 60
    assert symbols.lookup(0xffffffffc0b00010) == "nft_do_chain" and symbols.loads == 1  # modules same
    (files / "modules").write_text("xt_new 1 0 - Live 0xffffffffc0b00000\n")
    assert symbols.lookup(0xffffffffc0b00010) == "nft_do_chain"   # checked at most every 10 s
    clock.now += kallsyms.MODULES_CHECK_SECONDS
    assert symbols.lookup(0xffffffffc0b00010) == "xt_new" and symbols.loads == 2


def test_a_read_that_shows_no_addresses_keeps_the_table(files):
    """Without CAP_SYSLOG the kernel shows every address as 0: keep what was read before."""
    clock = FakeClock()
    symbols = kallsyms.Kallsyms(str(files / "kallsyms"), str(files / "modules"), clock)
    symbols.load()
    (files / "kallsyms").write_bytes(b"0000000000000000 T _stext\n0000000000000000 T schedule\n")
    (files / "modules").write_text("")
    clock.now += 60
    assert symbols.lookup(0xffffffff81000900) == "schedule" and symbols.loads == 2


def test_no_kallsyms_decodes_as_hex(tmp_path):
    kallsyms.install(kallsyms.Kallsyms(str(tmp_path / "missing"), str(tmp_path / "modules")))
    try:
        assert DECODERS["ksym"].decode(0xffffffff81000900, U64, {}) == "0xffffffff81000900"
    finally:
        kernel.use_symbols(None)


def test_a_real_kernel_symbol():
    with open("/proc/kallsyms") as f:
        addresses = [int(line.split()[0], 16) for line in f if line.split()[2:3] == ["schedule"]]
    if not addresses or addresses[0] == 0:
        pytest.skip("kernel addresses hidden (needs root / kptr_restrict)")
    kallsyms.install(kallsyms.Kallsyms())
    try:
        assert DECODERS["ksym"].decode(addresses[0], U64, {}) == "schedule"
        assert DECODERS["ksym"].decode(addresses[0] + 1, U64, {}) == "schedule"
    finally:
        kernel.use_symbols(None)
