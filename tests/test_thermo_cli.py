"""`limemu thermo` (scripts/limemu/thermo.py): R runs on a backend against the exact
distributions; the identity on the model for several kinds of run, and failures when the
heat counter or the runs are wrong."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from limemu.cli import main
from limemu.model import QuadraticProblem, Schedule, Spec
from limemu.model.thermo import exact_run
from limemu.runner import build_run, open_session
from limemu.thermo import check_second_law

U = 256                                    # 1 u in energy LSBs (barrier_frac_bits = 8)
RUNS = 200
MAXCUT = ["--workload", "maxcut", "--cells", "8", "--steps", "300", "--gain", "exp:0.1,4",
          "--quiet"]


def model_runs(problem):
    workload = SimpleNamespace(problem=problem)
    return lambda spec: open_session("model", workload, spec, progress=False)


def maxcut_case(**changes):
    options = {**dict(workload="maxcut", cells=8, steps=300, gain="exp:0.1,4"), **changes}
    workload, spec, steps = build_run(options)
    return spec, workload.problem, steps, None


def lsq_case():
    """Least squares on 3 cells of 3 bits from W = 0; the barrier keeps every step
    admissible (scaled steps of cells with Q_nn != 0 break detailed balance)."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(12, 3))
    y = X @ np.array([1.5, -1.0, 0.5]) + 0.3 * rng.normal(size=12)
    problem = QuadraticProblem.dense(np.rint(X.T @ X), np.rint(X.T @ y), name="lsq3")
    spec = Spec(cells=3, weight_bits=3, init="zero", barrier=Schedule.constant(7 * U),
                gain=Schedule.linear(4, 1 << 13))
    return spec, problem, 200, None


def barrier_case():
    return maxcut_case(barrier="linear:1,8", gain="constant:1")


def drive(step, weights):
    """Time-dependent external half tilts (LSBs), the same for every state: a slow drive
    (a fast one makes Sigma large, and <2^-Sigma> then rests on runs too rare to sample)."""
    phase = 2 * np.pi * step / 160
    return np.rint(U / 2 * np.sin(phase + np.arange(len(weights)))).astype(np.int64)


def external_case():
    spec = Spec(cells=3, weight_bits=2, tilt="external", barrier=Schedule.constant(U))
    return spec, None, 80, drive


CASES = {"maxcut": maxcut_case, "least squares from W = 0": lsq_case,
         "barrier ramp": barrier_case, "external tilts": external_case}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_identity_holds_on_the_model(name):
    spec, problem, steps, half_tilt = CASES[name]()
    figures, exact = check_second_law(spec, problem, steps, RUNS, model_runs(problem),
                                      half_tilt)
    assert figures["passed"], figures
    assert figures["detailed_balance_error"] < 2e-3
    assert figures["mean_heat_u"] != 0 and figures["runs"] == RUNS
    if spec.init != "random":
        assert figures["entropy_initial_bits"] == 0 and 0 < figures["ift_theorem"] < 1


def test_the_barrier_ramp_does_barrier_work():
    spec, problem, steps, _ = barrier_case()
    session = model_runs(problem)(spec)
    session.run(steps)
    assert session.counters()["barrier_work"] == spec.cells * 7 * U


class DoubledHeat:
    """A session whose net heat counter reads twice the heat."""

    def __init__(self, session):
        self.session = session

    def counters(self):
        counters = self.session.counters()
        return {**counters, "heat_net": 2 * counters["heat_net"]}

    def __getattr__(self, name):
        return getattr(self.session, name)


@pytest.mark.parametrize("name", ["maxcut", "least squares from W = 0"])
def test_a_heat_counter_off_by_a_factor_2_fails(name):
    spec, problem, steps, _ = CASES[name]()
    runs = model_runs(problem)
    figures, _ = check_second_law(spec, problem, steps, RUNS, lambda s: DoubledHeat(runs(s)))
    assert not figures["ift_ok"] and not figures["passed"]
    assert figures["histogram_ok"]                       # the states are right, the heat not


def test_runs_of_another_gain_fail_the_chi_square_test():
    spec, problem, steps, _ = maxcut_case()
    runs = model_runs(problem)
    figures, _ = check_second_law(spec, problem, steps, RUNS,
                                  lambda s: runs(s.replace(gain=Schedule.constant(6))))
    assert not figures["histogram_ok"] and not figures["passed"]


def test_command_prints_and_writes_the_figures(tmp_path, capsys):
    out = tmp_path / "thermo.json"
    assert main(["thermo", *MAXCUT, "--seeds", "100", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    for key in ("mean_heat_u", "clausius_bound_u", "mean_entropy_production", "ift_mean",
                "ift_stderr", "runs"):
        assert key in figures, key
    assert figures["runs"] == 100 and figures["backend"] == "model"
    spec, problem, steps, _ = maxcut_case()
    assert figures["clausius_bound_u"] == pytest.approx(
        exact_run(spec, problem, steps, tilted=False).clausius_bound_u)
    text = capsys.readouterr().out
    assert "thermo: PASS" in text and "Clausius bound" in text and "seeds 1..100" in text


def test_coupled_groups_fail_and_report_the_coupling_error(capsys):
    assert main(["thermo", *MAXCUT, "--order", "natural", "--lanes", "4",
                 "--seeds", "20"]) == 1
    text = capsys.readouterr().out
    assert "mean coupling error" in text and "detailed balance" in text
    assert "thermo: FAIL" in text


@pytest.mark.parametrize("argv,fragment", [
    (["--cells", "64"], "cells = 64"),
    (["--cells", "8", "--seeds", "1"], "seeds = 1"),
    (["--workload", "lsq"], "cells = 10"),
])
def test_bad_options_are_refused_before_anything_runs(argv, fragment, capsys):
    assert main(["thermo", "--steps", "10", *argv]) == 2
    assert fragment in capsys.readouterr().err


def test_reference_backend_gives_the_figures_of_the_model(tmp_path):
    outputs = []
    for backend in ("model", "reference"):
        outputs.append(tmp_path / f"{backend}.json")
        assert main(["thermo", *MAXCUT, "--steps", "40", "--seeds", "6", "--backend", backend,
                     "--json", str(outputs[-1])]) in (0, 1)
    model, reference = (json.loads(p.read_text()) for p in outputs)
    for key in ("mean_heat_u", "mean_entropy_production", "ift_mean", "ift_stderr",
                "chi_square"):
        assert model[key] == reference[key], key
