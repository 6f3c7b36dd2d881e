"""The package as a whole: one root name, no import cycles, nothing outside it, a wheel that
works from any folder."""

import ast
import importlib.util
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

PARTS = ("limemu", "limemu.model", "limemu.hdl", "limemu.synth")
ROOT = Path(__file__).resolve().parents[1]


def package_modules():
    """{module name: source path} of every module of the limemu package."""
    modules = {}
    for part in PARTS:
        folder = Path(importlib.util.find_spec(part).submodule_search_locations[0])
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            rel = rel[:-1] if rel[-1] == "__init__" else rel
            name = ".".join((part,) + rel)
            if rel and ".".join((part,) + rel[:1]) in PARTS and part != ".".join(
                    (part,) + rel[:1]):
                continue                       # a part of its own
            modules[name] = path
    return modules


def imported_modules(name, path, modules):
    """The limemu modules `name` imports, at any depth of its code (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = parent + ("." + base if base else "")
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c in modules and c != name)
    return found


def import_cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles():
    modules = package_modules()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert len(modules) > 40
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_product_code_does_not_edit_sys_path_or_find_the_checkout():
    for name, path in package_modules().items():
        text = path.read_text()
        for forbidden in ("sys.path", "parents[", "../shared", "cocotb_tests"):
            assert forbidden not in text, f"{name} ({path}) contains {forbidden!r}"


def test_texts_cite_nothing_a_reader_of_the_repository_cannot_see():
    texts = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("*/README.md")]
    texts += list(package_modules().values())
    for path in texts:
        text = path.read_text()
        for forbidden in ("../shared", "PHYSICS.md", "the seed's", "second seed", "the issue"):
            assert forbidden not in text, f"{path} cites {forbidden!r}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    (path,) = out.glob("limemu-*.whl")
    return path


def test_the_wheel_has_one_top_level_name_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(
        (".dist-info", ".data"))}
    assert tops == {"limemu"}
    for data in ("limemu/vboard_harness.cpp", "limemu/verilator_loop.cpp",
                 "limemu/array_server.py", "limemu/model/reference.py",
                 "limemu/hdl/array_core.py", "limemu/synth/boards.py"):
        assert data in names


@pytest.mark.slow
def test_an_installed_wheel_runs_from_any_folder(wheel, tmp_path):
    """A fresh virtual environment with only the wheel installed (its dependencies are this
    environment's: a .pth line, which does not bring in the checkout's editable install):
    `limemu run`, `report` and `crosscheck --backend verilator` from an unrelated folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-deps", "--no-index", "--quiet", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIMEMU_BUILD_DIR")}
    limemu = str(venv / "bin" / "limemu")

    def run(*args):
        result = subprocess.run([limemu, *args], cwd=work, env=env, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import limemu.model, limemu.hdl; print(limemu.model.__file__, "
                            "limemu.hdl.__file__)"], cwd=work, env=env, check=True,
                           capture_output=True, text=True).stdout
    assert str(ROOT) not in where and str(site) in where
    run("run", "--cells", "16", "--steps", "200", "--json", "run.json", "--quiet")
    run("report", "run.json", "--out", "report.html")
    assert (work / "report.html").is_file()
    out = run("crosscheck", "--backend", "verilator", "--cells", "16", "--lanes", "2",
              "--steps", "100", "--quiet")
    assert "crosscheck: PASS" in out
    assert (work / "build" / "verilator").is_dir()
