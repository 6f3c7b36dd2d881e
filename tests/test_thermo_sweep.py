"""scripts/thermo_sweep.py: the table and the plot of docs/thermodynamics.md, on a small case."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "thermo_sweep.py"


def test_sweep_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("thermo_sweep", SCRIPT)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    out = tmp_path / "sweep.png"
    assert sweep.main(["--cells", "6", "--runs", "30", "--lengths", "25,400",
                       "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.strip()[:3] in ("25 ", "400")]
    assert [row[0] for row in rows] == ["25", "400"]
    sigma = [float(row[6]) for row in rows]                # exact <Sigma> falls as K grows
    assert sigma[0] > sigma[1] > 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
