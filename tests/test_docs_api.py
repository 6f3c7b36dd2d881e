"""docs/api.md: every Python block runs as written (from a scratch folder)."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", PAGE.read_text(), flags=re.S | re.M)


README = PAGE.parents[1] / "README.md"


def test_the_readme_shows_the_page_s_first_example_as_it_runs_here():
    readme_blocks = re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.S | re.M)
    assert readme_blocks == [BLOCKS[0]]


def test_the_page_has_the_readme_example_first():
    assert len(BLOCKS) >= 5
    lines = BLOCKS[0].strip().splitlines()
    assert len([line for line in lines if line.strip()]) <= 10
    assert "limemu.run(" in BLOCKS[0] and "LimSampler()" in BLOCKS[0]


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_each_python_block_runs(number, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[number], f"{PAGE.name}, block {number + 1}", "exec"), {})
    assert capsys.readouterr().out.strip()          # every block prints what it shows
