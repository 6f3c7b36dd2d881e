"""The noisy line (scripts/limemu/noisy_line.py) and a short soak of the virtual board through it
(scripts/soak_vboard.py): faults happen, the host retries, the result stays bit-exact."""

import importlib.util
import os
import select
import time
import tty
from pathlib import Path

import pytest
from limemu.model.errors import ConfigError
from limemu.noisy_line import KINDS, FaultRates, Faults, NoisyLine

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soak_vboard.py"
DATA = bytes(range(256)) * 40


def load_script():
    spec = importlib.util.spec_from_file_location("soak_vboard", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def delivered(pieces):
    return b"".join(data for _, data in pieces)


def test_each_fault_kind_alone():
    flipped = delivered(Faults(FaultRates(flip=1.0), seed=1).apply(DATA))
    assert len(flipped) == len(DATA)
    assert all(bin(a ^ b).count("1") == 1 for a, b in zip(DATA, flipped))
    assert delivered(Faults(FaultRates(drop=1.0), seed=1).apply(DATA)) == b""
    doubled = delivered(Faults(FaultRates(duplicate=1.0), seed=1).apply(DATA))
    assert doubled == bytes(b for b in DATA for _ in (0, 1))
    faults = Faults(FaultRates(delay=0.01, delay_seconds=0.5), seed=1)
    pieces = faults.apply(DATA)
    assert delivered(pieces) == DATA                        # a stall keeps every byte in order
    stalls = [stall for stall, _ in pieces if stall > 0]
    assert len(stalls) == faults.counts["delay"] > 0 and max(stalls) <= 0.5


def test_faults_are_counted_and_seeded():
    rates = FaultRates.spread(0.04)
    first, again, other = Faults(rates, seed=3), Faults(rates, seed=3), Faults(rates, seed=4)
    out = first.apply(DATA)
    assert out == again.apply(DATA) and first.counts == again.counts
    assert delivered(other.apply(DATA)) != delivered(out)
    assert first.bytes == len(DATA)
    # each kind near its rate: 10240 bytes at 1 % each, so about 102 of each
    assert all(60 < first.counts[kind] < 150 for kind in KINDS), first.counts
    expected = len(DATA) - first.counts["drop"] + first.counts["duplicate"]
    assert len(delivered(out)) == expected


def test_rates_are_checked():
    with pytest.raises(ConfigError, match="drop"):
        FaultRates(drop=1.5)
    with pytest.raises(ConfigError, match="sum of the fault rates"):
        FaultRates(flip=0.6, drop=0.6)


def read_all(fd, count, seconds=5.0):
    data, deadline = b"", time.monotonic() + seconds
    while len(data) < count and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            data += os.read(fd, 4096)
    return data


def test_relay_both_ways():
    """Through the relay's pty: clean bytes both ways, then every byte to the board dropped."""
    master, slave = os.openpty()                            # a stand-in for the board's pty
    tty.setraw(slave)
    board_port = os.ttyname(slave)
    try:
        with NoisyLine(board_port, FaultRates()) as line:
            host = os.open(line.port, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(host)
            try:
                os.write(host, DATA[:3000])
                assert read_all(master, 3000) == DATA[:3000]
                os.write(master, DATA[:2000])
                assert read_all(host, 2000) == DATA[:2000]
                assert line.counts()["to_board"]["bytes"] == 3000
                assert line.counts()["to_host"]["bytes"] == 2000
                assert sum(line.injected().values()) == 0
            finally:
                os.close(host)
        with NoisyLine(board_port, FaultRates(drop=1.0)) as line:
            host = os.open(line.port, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(host)
            try:
                os.write(host, DATA[:500])
                time.sleep(0.3)
                assert read_all(master, 1, seconds=0.3) == b""
                assert line.injected()["drop"] == 500
            finally:
                os.close(host)
    finally:
        os.close(master)
        os.close(slave)


def test_short_soak_is_bit_exact():
    """About a minute of annealing on the virtual board through a line with 2e-3 faults per
    byte: faults are injected, the host resends, and every checkpoint equals the model."""
    script = load_script()
    lines = []
    figures = script.soak(minutes=0.75, fault_rate=2e-3, seed=2, cells=32, steps=20,
                          out=lines.append)
    report = script.summary(figures)
    assert script.passed(figures), report
    assert figures["checkpoints"] >= 3, report
    assert all(figures["faults"][kind] > 0 for kind in KINDS), report
    assert figures["resent"] > 0 and figures["failures"] == 0, report
    assert figures["first_law"].startswith("exact"), report
