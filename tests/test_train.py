"""`limemu train`: the JSON it writes (the conventions of `limemu run`) and its errors."""

import json

import pytest
from limemu.cli import main


def test_train_mh_writes_counters_and_energy_like_run(tmp_path, capsys):
    out = tmp_path / "mh.json"
    assert main(["train", "--method", "mh", "--nonideality", "mild", "--steps", "400",
                 "--seed", "2", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    for key in ("workload", "backend", "config", "steps", "counters", "overflow", "weights",
                "loss", "energy", "metrics", "identities", "mh", "seconds"):
        assert key in r, key
    spec = r["config"]["spec"]
    assert r["config"]["nonideality_level"] == "mild" and r["config"]["seed"] == 2
    assert r["counters"]["steps"] == 400
    assert r["counters"]["evaluations"] == 400 * spec["cells"] == 400 * len(r["weights"])
    assert all(isinstance(v, int) for v in r["counters"].values())
    lsb = 2.0 ** -spec["barrier_frac_bits"]
    for name in ("heat_net", "heat_abs", "barrier_work"):
        assert r["energy"][f"{name}_u"] == r["counters"][name] * lsb
    # the gain's work and the forward passes are the host's (the array counts neither)
    assert r["counters"]["anneal_work"] == 0 == r["counters"]["field_adds"]
    assert r["energy"]["anneal_work_u"] == r["mh"]["anneal_work"] * lsb != 0
    c = r["counters"]
    assert c["proposals"] == r["mh"]["proposals"] and c["acceptances"] == r["mh"]["accepted"]
    assert c["up_moves"] + c["down_moves"] - c["reverted_moves"] > 0
    for key in ("heat_u", "heat_J", "landauer_bound_u", "speed_bound_u", "temperature_K",
                "macs", "conventional_J"):
        assert key in r["energy"], key
    assert r["energy"]["macs"] == r["mh"]["forward_macs"] > 0
    assert 0 <= r["metrics"]["test_accuracy"] <= 1
    assert r["identities"]["first_law"] == "exact"
    text = capsys.readouterr().out
    assert "test accuracy on the chip" in text and "first law: exact" in text
    assert main(["report", str(out)]) == 0                 # the energy report reads it
    assert (tmp_path / "mh.report.html").stat().st_size > 10_000


def test_train_backprop_writes_its_result(tmp_path, capsys):
    out = tmp_path / "bp.json"
    assert main(["train", "--method", "backprop", "--nonideality", "strong", "--epochs", "50",
                 "--train-fraction", "0.1", "--json", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert r["method"] == "backprop" and r["config"]["n_train"] == 39
    assert r["counters"] is None and r["energy"]["macs"] == 3 * 50 * 39 * (30 * 8 + 8)
    assert "backprop (float, ideal model)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,fragment", [
    (["--nonideality", "extreme"], "nonideality = 'extreme'"),
    (["--nonideality", "gain=-0.5"], "nonideality.gain = -0.5"),
    (["--train-fraction", "0.01"], "train_fraction = 0.01"),
    (["--train-fraction", "1.5"], "train_fraction = 1.5"),
    (["--test-fraction", "0.9"], "test_fraction = 0.9"),
    (["--steps", "0"], "steps = 0"),
    (["--steps", "100", "--burn-in", "100"], "burn_in = 100"),
    (["--moves", "0"], "moves = 0"),
    (["--moves", "1000"], "moves = 1000"),
    (["--lanes", "0"], "lanes = 0"),
    (["--bits", "1"], "weight_bits = 1"),
    (["--hidden", "0"], "hidden = 0"),
    (["--seed", "-1"], "seed = -1"),
    (["--gain", "cosine:1"], "--gain"),
    (["--barrier", "constant:0.5"], "the proposal barrier must stay >= 1 u"),
    (["--loss-frac-bits", "30"], "loss_frac_bits = 30"),
    (["--method", "backprop", "--epochs", "0"], "epochs = 0"),
    (["--method", "backprop", "--lr", "0"], "lr = 0"),
    (["--set", "colour=1"], "--set"),
    (["--full-scale-in", "0"], "full_scale_in = 0"),
])
def test_bad_train_options_give_a_clear_error(argv, fragment, capsys):
    steps = [] if "--steps" in argv else ["--steps", "20"]
    assert main(["train", "--quiet"] + steps + argv) == 2
    err = capsys.readouterr().err
    assert "limemu: error:" in err and fragment in err, err


def test_unknown_method_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--method", "sgd"])
    assert e.value.code == 2
    assert "invalid choice: 'sgd'" in capsys.readouterr().err


def test_crosscheck_mh_on_the_reference_loop_passes(capsys):
    assert main(["crosscheck", "--workload", "mh", "--backend", "reference", "--steps", "40",
                 "--quiet"]) == 0
    assert "crosscheck: PASS: MH chain of 40 steps identical" in capsys.readouterr().out


def test_crosscheck_mh_names_the_first_step_where_the_chains_part(monkeypatch, capsys):
    """A backend whose decision goes the other way once: FAIL, at that step."""
    from limemu import train as train_module
    from limemu.model.mh import ModelArray

    class OneWrongDecision(ModelArray):
        def decide(self, delta_e):
            accepted = super().decide(delta_e)
            if self.counters.exact["proposals"] == 7 and accepted:
                self.W[self._moved] -= self._dw           # reverted though accepted
            return accepted

    real = train_module.array_factory
    monkeypatch.setattr(train_module, "array_factory",
                        lambda o: OneWrongDecision if o["backend"] == "reference" else real(o))
    assert main(["crosscheck", "--workload", "mh", "--backend", "reference", "--steps", "60",
                 "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "crosscheck: FAIL: weights differ after step" in out and "seed 1" in out


def test_train_on_the_compact_core_runs_tables_on_one_lane(tmp_path):
    out = tmp_path / "mh.json"
    assert main(["train", "--steps", "50", "--core", "compact", "--quiet", "--json",
                 str(out)]) == 0
    r = json.loads(out.read_text())
    spec = r["config"]["spec"]
    assert r["config"]["core"] == "compact" and spec["lanes"] == 1
    assert spec["gain"]["kind"] == "table"
    with pytest.raises(SystemExit):
        main(["train", "--core", "tiny"])
    assert main(["train", "--steps", "5", "--core", "compact", "--lanes", "2", "--quiet"]) == 2
