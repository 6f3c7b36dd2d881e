"""Experiment files: reading TOML, run files, and repeating a run from its result JSON."""

import json

import numpy as np
import pytest
from limemu.cli import main
from limemu.config import check_run_table, config_hash, parse_toml
from limemu.model import ConfigError
from limemu.workloads import random_graph, write_gset


def test_invalid_toml_is_refused_naming_the_file():
    with pytest.raises(ConfigError, match="f.toml: not valid TOML"):
        parse_toml("a = [1, 2\n", "f.toml")


def write(path, text):
    path.write_text(text)
    return path


RUN_FILE = '''workload = "maxcut"
cells = 16
lanes = 4
order = "colour"
steps = 300
seed = 3
barrier = "linear:2,8"
gain = "exp:0.2,4"
[formats]
barrier_frac_bits = 10
'''


def test_run_file_equals_the_same_options_on_the_command_line(tmp_path):
    config = write(tmp_path / "run.toml", RUN_FILE)
    assert main(["run", "--config", str(config), "--json", str(tmp_path / "a.json"),
                 "--quiet"]) == 0
    assert main(["run", "--workload", "maxcut", "--cells", "16", "--lanes", "4", "--order",
                 "colour", "--steps", "300", "--seed", "3", "--barrier", "linear:2,8",
                 "--gain", "exp:0.2,4", "--set", "barrier_frac_bits=10",
                 "--json", str(tmp_path / "b.json"), "--quiet"]) == 0
    a, b = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "ab")
    assert a["config"] == b["config"] and a["weights"] == b["weights"]
    assert a["counters"] == b["counters"] and a["run_config"] == b["run_config"]
    rc = a["run_config"]
    assert rc["formats"]["barrier_frac_bits"] == 10 and rc["barrier"] == "linear:2,8"
    assert rc["steps"] == 300 and rc["seed"] == 3 and rc["backend"] == "model"


def test_result_json_repeats_the_run_exactly_with_its_trace(tmp_path):
    traced = RUN_FILE.replace("[formats]", "trace_every = 20\n[formats]")
    config = write(tmp_path / "run.toml", traced)
    first, again = tmp_path / "first.json", tmp_path / "again.json"
    assert main(["run", "--config", str(config), "--json", str(first), "--quiet"]) == 0
    assert main(["run", "--config", str(first), "--json", str(again), "--quiet"]) == 0
    a, b = (json.loads(p.read_text()) for p in (first, again))
    for key in ("config", "run_config", "weights", "counters", "energy", "loss", "cut"):
        assert a[key] == b[key], key
    with np.load(tmp_path / "first.trace.npz") as ta, np.load(tmp_path / "again.trace.npz") as tb:
        for name in ("step", "counters", "precision", "tracked_tilt", "tilt_quantiles"):
            assert np.array_equal(ta[name], tb[name]), name


def test_command_line_overrides_the_file(tmp_path, capsys):
    config = write(tmp_path / "run.toml", RUN_FILE)
    first = tmp_path / "first.json"
    main(["run", "--config", str(config), "--json", str(first), "--quiet"])
    assert main(["run", "--config", str(first), "--seed", "4", "--steps", "200",
                 "--json", str(tmp_path / "b.json"), "--quiet"]) == 0
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["run_config"]["seed"] == 4 and b["steps"] == 200
    assert b["run_config"]["barrier"] == "linear:2,8"
    err = capsys.readouterr().err       # steps changes the schedules' rates too
    assert "differs from the recorded one in barrier, gain, seed" in err


def test_paths_in_a_run_file_are_relative_to_it(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    write_gset(random_graph(10, m=20, seed=2), folder / "g10.txt")
    config = write(folder / "run.toml", 'graph = "g10.txt"\nsteps = 200\n')
    out = tmp_path / "r.json"
    assert main(["run", "--config", str(config), "--json", str(out), "--quiet"]) == 0
    rc = json.loads(out.read_text())["run_config"]
    assert rc["graph"] == str((folder / "g10.txt").resolve()) and len(rc["graph_sha256"]) == 64
    # a changed graph file cannot repeat the run
    write_gset(random_graph(10, m=21, seed=2), folder / "g10.txt")
    assert main(["run", "--config", str(out), "--json", str(tmp_path / "b.json"),
                 "--quiet"]) == 2


@pytest.mark.parametrize("text,fragment", [
    ("colour = 1\n", "unknown option 'colour'"),
    ('steps = "10"\n', "steps = '10': must be an integer"),
    ("lanes = true\n", "lanes = True: must be an integer"),
    ("[formats]\nwidth = 3\n", "formats.width"),
    ('order = "diagonal"\n', "order"),
    ("steps = [\n", "not valid TOML"),
])
def test_bad_run_files_give_a_clear_error(tmp_path, capsys, text, fragment):
    config = write(tmp_path / "bad.toml", text)
    assert main(["run", "--config", str(config), "--steps", "10", "--quiet"]) == 2
    assert fragment in capsys.readouterr().err


def test_missing_config_and_non_result_json(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "none.toml"), "--quiet"]) == 2
    assert "cannot read" in capsys.readouterr().err
    write(tmp_path / "x.json", '{"a": 1}')
    assert main(["run", "--config", str(tmp_path / "x.json"), "--quiet"]) == 2
    assert "run_config" in capsys.readouterr().err


def test_config_hash_is_stable_and_order_free():
    a = check_run_table({"workload": "maxcut", "seed": 2, "formats": {"gain_frac_bits": 4}}, "x")
    b = check_run_table({"formats": {"gain_frac_bits": 4}, "seed": 2, "workload": "maxcut"}, "x")
    assert config_hash(a) == config_hash(b) and len(config_hash(a)) == 16
    assert config_hash(a) != config_hash({**a, "seed": 3})
