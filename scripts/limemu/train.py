"""`limemu train`: chip-in-the-loop training on the Wisconsin breast-cancer data.

Two methods train the same network (``limemu.model.mh.NetworkLayout``: 30 inputs, one hidden
ReLU layer, one logit; every weight and bias a b-bit cell of the array) for the same chip
(``limemu.model.mh.ChipModel``: a non-ideal forward model with seeded mismatch the trainer does
not know):

* ``mh``: Metropolis-Hastings with the chip in the loop (``limemu.model.mh.MHTrainer``):
  proposals from the array's lane generators, acceptance by the crossing unit, every event
  counted; the loss is the chip's cross-entropy summed over the training examples (nats), so
  at eta = 1/ln 2 u per nat the chain samples the Bayesian posterior of the cells (flat prior
  on the ladder). The deployed cells are the posterior mean after burn-in, rounded to the
  ladder.
* ``backprop``: the baseline. Plain NumPy gradients (full-batch Adam on the mean cross-entropy
  plus a small weight decay) on the *ideal* model, in floating point, each weight kept inside
  the range its cell can hold; the trained weights are rounded to the cells and written to the
  chip, which is then tested as it is (the usual transfer of offline training).

Data: ``sklearn.datasets.load_breast_cancer`` (569 x 30, shipped with scikit-learn, no
download), a stratified train/test split per seed (``--test-fraction``, default 0.3) and,
with ``--train-fraction`` < 1, a stratified subset of the training split (the reduced-data
setting). Features are standardised with the statistics of the training examples used.
Accuracies are measured on the chip (with its read noise) unless named ``ideal_*``.
"""

import functools
import json
import math
import time

import numpy as np

from limemu.model import physics
from limemu.model.errors import require
from limemu.model.mh import (
    AVERAGES,
    LEVELS,
    ChipModel,
    MHTrainer,
    ModelArray,
    NetworkLayout,
    ReferenceArray,
    cross_entropy,
    parse_nonideality,
    proposal_barrier_u,
)
from limemu.model.spec import Spec

from . import runner
from .files import write_atomic
from .runner import _jsonable
from .progress import bar
from .schedule_options import parse_schedule
from .specs import parse_settings

METHODS = ("mh", "backprop")
DATASET = "breast_cancer"
SAMPLES, FEATURES = 569, 30
MAX_SEED = 2**32                 # scikit-learn's random_state limit

# Defaults of `limemu train` (also the settings of the evidence table, scripts/bench_mh.py).
DEFAULTS = dict(method="mh", nonideality="none", train_fraction=1.0, test_fraction=0.3,
                hidden=8, bits=4, full_scale_in=1.0, full_scale_out=2.0,
                steps=20000, burn_in=None, moves=2.0, gain="exp:0.05,16", lanes=4,
                loss_frac_bits=8, average="chain", epochs=1000, lr=0.01, weight_decay=1e-3,
                backend="model", remeasure=False, core="pipelined")
#: where an MH chain's array runs: the golden model, its plain reference loop, or the core
MH_BACKENDS = ("model", "reference", "verilator", "vboard", "board")
MH_CORES = ("pipelined", "compact")
COMPACT_TABLE_ENTRIES = 256      # --core compact: computed schedules as tables of this length


# -- data ---------------------------------------------------------------------------------------
def load_data():
    """(X, y): the Wisconsin breast-cancer data as scikit-learn ships it (y = 1: benign)."""
    from sklearn.datasets import load_breast_cancer  # noqa: PLC0415 (lazy: sklearn is heavy)

    X, y = load_breast_cancer(return_X_y=True)
    require(X.shape == (SAMPLES, FEATURES), "breast-cancer data", X.shape,
            f"expected ({SAMPLES}, {FEATURES}) from scikit-learn")
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def make_splits(seed, train_fraction=1.0, test_fraction=0.3, data=None):
    """Stratified splits for a seed: dict with X_train, y_train, X_test, y_test (standardised
    with the statistics of X_train) and the sizes. The test split depends on the seed and
    test_fraction only, so a reduced training set is tested on the same examples."""
    from sklearn.model_selection import train_test_split  # noqa: PLC0415

    require(isinstance(seed, (int, np.integer)) and 0 <= seed < MAX_SEED, "seed", seed,
            f"must be an integer in [0, {MAX_SEED})")
    require(_number(test_fraction) and 0.05 <= test_fraction <= 0.5, "test_fraction",
            test_fraction, "must be in [0.05, 0.5]")
    X, y = load_data() if data is None else data
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_fraction, stratify=y, random_state=int(seed))
    minimum = 10 / len(y_train)
    require(_number(train_fraction) and minimum <= train_fraction <= 1.0, "train_fraction",
            train_fraction, f"must be in [{minimum:.3f}, 1] (at least 10 training examples)")
    if train_fraction < 1.0:
        X_train, _, y_train, _ = train_test_split(
            X_train, y_train, train_size=train_fraction, stratify=y_train,
            random_state=int(seed))
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return dict(X_train=(X_train - mean) / std, y_train=y_train,
                X_test=(X_test - mean) / std, y_test=y_test,
                n_train=len(y_train), n_test=len(y_test))


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# -- the baseline: backpropagation on the ideal model -------------------------------------------
def backprop(layout, X, y, seed, epochs=1000, lr=0.01, weight_decay=1e-3):
    """Float weights per cell (the cell order of ``layout``) trained by full-batch Adam on the
    ideal model: mean cross-entropy + weight_decay/2 * sum of squared weights, each weight
    clipped to the range of its cell after every update. Returns (weights, MACs)."""
    require(isinstance(epochs, int) and 1 <= epochs <= 10**6, "epochs", epochs,
            "must be an integer in [1, 1000000]")
    require(_number(lr) and 0 < lr <= 1, "lr", lr, "must be in (0, 1]")
    require(_number(weight_decay) and 0 <= weight_decay <= 1, "weight_decay", weight_decay,
            "must be in [0, 1]")
    rng = np.random.default_rng([int(seed), 0x6270])                    # 'bp'
    i, h = layout.inputs, layout.hidden
    scale = layout.scales()
    lo, hi = layout.w_lo * scale, layout.w_hi * scale
    w = np.zeros(layout.cells)
    w1, _, v, _ = layout.split(w)                                        # views into w
    w1[...] = rng.normal(0.0, math.sqrt(2.0 / i), (i, h))                # He initialisation
    v[...] = rng.normal(0.0, math.sqrt(1.0 / h), h)
    np.clip(w, lo, hi, out=w)
    m, s = np.zeros_like(w), np.zeros_like(w)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n = len(y)
    for t in range(1, epochs + 1):
        w1, b1, v, c = layout.split(w)
        a = X @ w1 + b1
        hid = np.maximum(a, 0.0)
        z = hid @ v + c
        dz = (1.0 / (1.0 + np.exp(-z)) - y) / n                          # d mean CE / dz
        g = np.empty_like(w)
        g1, gb1, gv, _ = layout.split(g)
        gv[...] = hid.T @ dz
        g[-1] = dz.sum()
        da = np.outer(dz, v) * (a > 0)
        g1[...] = X.T @ da
        gb1[...] = da.sum(axis=0)
        g += weight_decay * w
        m = beta1 * m + (1 - beta1) * g
        s = beta2 * s + (1 - beta2) * g * g
        w = w - lr * (m / (1 - beta1**t)) / (np.sqrt(s / (1 - beta2**t)) + eps)
        np.clip(w, lo, hi, out=w)
    return w, 3 * epochs * layout.macs(n)                  # forward + two backward products


def ideal_logits(layout, X, w):
    w1, b1, v, c = layout.split(w)
    return np.maximum(X @ w1 + b1, 0.0) @ v + c


def to_cells(layout, w):
    """Float weights -> cells: nearest level of the ladder (ties to even), clipped."""
    return np.clip(np.rint(w / layout.scales()), layout.w_lo, layout.w_hi).astype(np.int64)


# -- one training run ---------------------------------------------------------------------------
def train_options(options):
    """Validated, complete options (dict) from a dict that may miss keys or hold None."""
    o = {k: (options.get(k) if options.get(k) is not None else v) for k, v in DEFAULTS.items()}
    for key in ("seed", "chip_seed", "temperature", "quiet", "set", "barrier", "port", "baud"):
        o[key] = options.get(key)
    o["seed"] = 1 if o["seed"] is None else o["seed"]
    o["chip_seed"] = o["seed"] if o["chip_seed"] is None else o["chip_seed"]
    o["temperature"] = 300.0 if o["temperature"] is None else o["temperature"]
    require(o["method"] in METHODS, "method", o["method"], f"must be one of {METHODS}")
    require(o["average"] in AVERAGES, "average", o["average"], f"must be one of {AVERAGES}")
    require(o["backend"] in MH_BACKENDS, "backend", o["backend"], f"must be one of {MH_BACKENDS}")
    require(o["backend"] == "model" or o["method"] == "mh", "backend", o["backend"],
            "only --method mh runs on an array (backprop trains on the host)")
    require(o["port"] is None or o["backend"] == "board", "port", o["port"],
            "only --backend board takes a port")
    require(o["core"] in MH_CORES, "core", o["core"], f"must be one of {MH_CORES} (the cores "
            "with the MH commands)")
    if o["core"] == "compact":
        o["lanes"] = 1 if options.get("lanes") is None else o["lanes"]
        require(o["lanes"] == 1, "lanes", o["lanes"], "must be 1 for the compact core")
    for key in ("hidden", "bits", "steps", "lanes", "loss_frac_bits", "epochs"):
        require(isinstance(o[key], int) and not isinstance(o[key], bool), key, o[key],
                "must be an integer")
    require(o["steps"] >= 1, "steps", o["steps"], "must be >= 1")
    if o["burn_in"] is None:
        o["burn_in"] = o["steps"] // 2
    require(isinstance(o["burn_in"], int) and 0 <= o["burn_in"] < o["steps"], "burn_in",
            o["burn_in"], f"must be an integer in [0, steps = {o['steps']})")
    require(isinstance(o["chip_seed"], int) and 0 <= o["chip_seed"] < 2**64, "chip_seed",
            o["chip_seed"], "must be an integer in [0, 2**64)")
    require(_number(o["temperature"]) and o["temperature"] > 0, "temperature",
            o["temperature"], "must be > 0 K")
    return o


def build_layout(o):
    return NetworkLayout(inputs=FEATURES, hidden=o["hidden"], weight_bits=o["bits"],
                         full_scale_in=o["full_scale_in"], full_scale_out=o["full_scale_out"])


def build_spec(o, layout):
    """The array's Spec for an MH run: cells, lanes, seed, proposal barrier, gain schedule."""
    fields = dict(cells=layout.cells, weight_bits=layout.weight_bits, seed=o["seed"],
                  tilt="external", init="zero")
    require(1 <= o["lanes"] <= layout.cells, "lanes", o["lanes"],
            f"must be in [1, cells = {layout.cells}]")
    fields["lanes"] = o["lanes"]
    fields.update(parse_settings(o.get("set") or []))
    probe = Spec(**fields)
    if o.get("barrier"):
        fields["barrier"] = parse_schedule(o["barrier"], "--barrier", probe.barrier_frac_bits,
                                           o["steps"], probe.barrier_bits)
    else:
        e0 = proposal_barrier_u(layout.cells, o["moves"])
        fields["barrier"] = parse_schedule(f"constant:{e0!r}", "--moves",
                                           probe.barrier_frac_bits, o["steps"],
                                           probe.barrier_bits)
    fields["gain"] = parse_schedule(o["gain"], "--gain", probe.gain_frac_bits, o["steps"],
                                    probe.gain_bits)
    if o["core"] == "compact":            # its schedule units compute tables only
        for unit, bits in (("barrier", probe.barrier_bits), ("gain", probe.gain_bits)):
            if fields[unit].kind not in ("constant", "table"):
                per_entry = max(1, -(-o["steps"] // COMPACT_TABLE_ENTRIES))
                fields[unit] = fields[unit].tabulated(unit, bits, COMPACT_TABLE_ENTRIES,
                                                      per_entry)
    return Spec(**fields)


def initial_cells(layout, seed):
    """Initial cells of an MH run: each uniform in {-1, 0, +1} (seeded, not the array's RNG:
    the host writes them)."""
    rng = np.random.default_rng([int(seed), 0x696E6974])                # 'init'
    return rng.integers(-1, 2, layout.cells).astype(np.int64)


def run_training(options, progress=None, data=None):
    """One training run; returns the result dict (the JSON of `limemu train`)."""
    started = time.perf_counter()
    o = train_options(options)
    nonideality = parse_nonideality(o["nonideality"])
    layout = build_layout(o)
    splits = make_splits(o["seed"], o["train_fraction"], o["test_fraction"], data)
    X, y = splits["X_train"], splits["y_train"]
    chip = ChipModel(layout, nonideality, o["chip_seed"])
    result = {
        "command": "train",
        "workload": f"train/{DATASET}",
        "method": o["method"],
        "backend": o["backend"],
        "config": {
            "method": o["method"], "dataset": DATASET, "seed": o["seed"], "core": o["core"],
            "chip_seed": o["chip_seed"], "nonideality_level": o["nonideality"],
            "nonideality": nonideality.to_dict(), "layout": layout.to_dict(),
            "train_fraction": o["train_fraction"], "test_fraction": o["test_fraction"],
            "n_train": splits["n_train"], "n_test": splits["n_test"],
        },
    }
    if o["method"] == "mh":
        spec = build_spec(o, layout)
        result["config"].update(spec=spec.to_dict(), steps=o["steps"], burn_in=o["burn_in"],
                                moves=o["moves"], barrier=o.get("barrier"), gain=o["gain"],
                                loss_frac_bits=o["loss_frac_bits"], average=o["average"],
                                remeasure=o["remeasure"], core=o["core"])

        def loss_fn(W):
            return chip.loss(X, y, W), layout.macs(len(y))

        trainer = MHTrainer(spec, loss_fn, initial_cells(layout, o["seed"]),
                            burn_in=o["burn_in"], loss_frac_bits=o["loss_frac_bits"],
                            average=o["average"], record_every=max(1, o["steps"] // 50),
                            remeasure=o["remeasure"], array=array_factory(o))
        try:
            run_started = time.perf_counter()
            mh = trainer.run(o["steps"], progress=progress)
            result["throughput"] = mh_throughput(trainer, time.perf_counter() - run_started)
        finally:
            trainer.array.close()
        cells = mh.deployed
        c = mh.counters
        result["steps"] = o["steps"]
        result["counters"] = c.hardware()
        result["overflow"] = dict(c.overflow)
        result["energy"] = energy_report(spec, c.exact, trainer.W0, mh.final,
                                         o["temperature"])
        # the gain's work on the kept loss is the host's (it holds the loss): not a counter
        result["energy"]["anneal_work_u"] = mh.stats["anneal_work"] * spec.energy_lsb_u
        result["mh"] = _jsonable(mh.stats)
        result["history"] = [{"step": s, "loss": loss, "gain": g} for s, loss, g in mh.history]
        result["identities"] = {"first_law": "exact" if o["backend"] in ("model", "reference")
                                else f"exact (heat_net from the {o['backend']}'s counter)"}
        macs = mh.stats["forward_macs"]
        result["posterior_mean"] = [round(float(x), 6) for x in mh.mean]
    else:
        result["config"].update(epochs=o["epochs"], lr=o["lr"],
                                weight_decay=o["weight_decay"])
        w, macs = backprop(layout, X, y, o["seed"], o["epochs"], o["lr"], o["weight_decay"])
        cells = to_cells(layout, w)
        # no array run, so no counters and no heat: the training ran on digital hardware
        # (energy.macs and energy.conventional_J)
        result["steps"] = 0
        result["counters"] = None
        result["overflow"] = None
        result["energy"] = {"temperature_K": o["temperature"]}
        result["identities"] = {"first_law": "not applicable (no array run)"}
        result["ideal_float"] = {
            "train_accuracy": _acc(ideal_logits(layout, X, w), y),
            "test_accuracy": _acc(ideal_logits(layout, splits["X_test"], w), splits["y_test"])}
    result["energy"]["macs"] = int(macs)
    result["energy"]["conventional_J"] = macs * physics.CONVENTIONAL_J_PER_OP
    result["weights"] = [int(x) for x in cells]
    ideal = ChipModel(layout)
    Xt, yt = splits["X_test"], splits["y_test"]
    result["metrics"] = {
        "test_accuracy": chip.accuracy(Xt, yt, cells),
        "train_accuracy": chip.accuracy(X, y, cells),
        "test_loss": chip.loss(Xt, yt, cells) / len(yt),
        "ideal_test_accuracy": ideal.accuracy(Xt, yt, cells),
    }
    result["loss"] = float(cross_entropy(chip.logits(X, cells, noisy=False), y))
    result["seconds"] = time.perf_counter() - started
    # the key `limemu report` reads, as in `limemu run`'s JSON (no array run: 0)
    evaluations = (result.get("counters") or {}).get("evaluations", 0)
    result["cell_evaluations_per_s"] = evaluations / max(result["seconds"], 1e-9)
    return _jsonable(result)


def crosscheck_mh(options, backend, log=print):
    """The MH chain of `limemu train` (its options) on the model and on `backend`, compared
    step for step: the weights after every step, every decision with both energies, every
    counter and overflow flag. Returns (passed, message)."""
    o = train_options({**options, "method": "mh"})
    layout = build_layout(o)
    splits = make_splits(o["seed"], o["train_fraction"], o["test_fraction"])
    X, y = splits["X_train"], splits["y_train"]
    spec = build_spec(o, layout)
    chains = {}
    for name in ("model", backend):
        chip = ChipModel(layout, parse_nonideality(o["nonideality"]), o["chip_seed"])

        def loss_fn(W, chip=chip):
            return chip.loss(X, y, W), layout.macs(len(y))

        trainer = MHTrainer(spec, loss_fn, initial_cells(layout, o["seed"]),
                            burn_in=o["burn_in"], loss_frac_bits=o["loss_frac_bits"],
                            remeasure=o["remeasure"], trace=True,
                            array=array_factory({**o, "backend": name}))
        try:
            started = time.perf_counter()
            trainer.run(o["steps"])                   # checks the first law on its counters
            log(f"  {name}: {o['steps']} steps in {time.perf_counter() - started:.1f} s")
            counters = trainer.counters
            chains[name] = (trainer.states, trainer.trace, dict(counters.exact),
                            dict(counters.overflow))
        finally:
            trainer.array.close()
    model, other = chains["model"], chains[backend]
    where = f"[seed {o['seed']}, {spec!r}]"
    for step, (a, b) in enumerate(zip(model[0], other[0])):
        if not np.array_equal(a, b):
            cell = int(np.flatnonzero(a != b)[0])
            return False, (f"weights differ after step {step + 1}: cell {cell} is {b[cell]} "
                           f"on {backend}, {a[cell]} on the model {where}")
    for a, b in zip(model[1], other[1]):
        if a != b:
            return False, (f"decision at step {a[0] + 1}: (E, E', accepted) = {b[1:]} on "
                           f"{backend}, {a[1:]} on the model {where}")
    for index, what in ((2, "counter"), (3, "overflow flag")):
        differ = {k: (model[index][k], other[index][k]) for k in model[index]
                  if model[index][k] != other[index][k]}
        if differ:
            return False, f"{what}s differ (model, {backend}): {differ} {where}"
    return True, (f"MH chain of {o['steps']} steps identical on the model and {backend}: "
                  f"the {spec.cells} weights after every step, {len(model[1])} decisions, "
                  f"{len(model[2])} counters and their overflow flags")


def array_factory(o):
    """The array class of --backend (called with the spec and the initial cells)."""
    if o["backend"] == "model":
        return ModelArray
    if o["backend"] == "reference":
        return ReferenceArray
    from .mh_hardware import HardwareArray  # noqa: PLC0415 (the RTL's tools load on demand)
    options = {k: o[k] for k in ("port", "baud") if o.get(k) is not None}
    return functools.partial(HardwareArray, backend=o["backend"], core=o["core"],
                             log=None if o.get("quiet") else print, **options)


def mh_throughput(trainer, seconds):
    """MH steps per second of this run; for an array core also its host requests per step
    and the steps per second the serial link would allow at a board's baud rate."""
    steps = trainer.stats["proposals"] + trainer.stats["empty"]
    out = {"steps": steps, "seconds": seconds, "steps_per_s": steps / max(seconds, 1e-9)}
    link = getattr(trainer.array, "link_estimate", None)
    if link is not None:
        out.update(link(steps))
        cycles = trainer.array.cycles            # the core's own count of its run cycles
        out.update(core_cycles=cycles, core_cycles_per_step=cycles / max(steps, 1))
    return out


def _acc(z, y):
    return float(np.mean((z > 0) == (y > 0)))


def energy_report(spec, exact, W0, W, temperature_K):
    """The `energy` dict of `limemu run` (runner.energy_report) for an MH run."""
    return runner.energy_report(spec, exact, W, np.asarray(W0), temperature_K=temperature_K)


# -- the command --------------------------------------------------------------------------------
def add_train_options(p):
    """Options of `limemu train` (cli.py calls this on its subparser)."""
    d = DEFAULTS
    p.add_argument("--method", choices=METHODS, default=d["method"],
                   help="mh: Metropolis-Hastings with the chip in the loop; backprop: gradients "
                   "on the ideal model, transferred (default mh)")
    p.add_argument("--nonideality", metavar="LEVEL", default=d["nonideality"],
                   help=f"chip non-idealities: {'|'.join(LEVELS)} or key=value,... with keys "
                   "gain, offset, quant, saturation, noise (a level first: 'strong,noise=0') "
                   "(default none)")
    p.add_argument("--train-fraction", type=float, default=d["train_fraction"],
                   help="stratified fraction of the training split used (default 1; 0.1 = the "
                   "reduced-data setting)")
    p.add_argument("--test-fraction", type=float, default=d["test_fraction"],
                   help="stratified test split (default 0.3)")
    p.add_argument("--seed", type=int, default=1, help="seed of the split, the array's "
                   "generators and the initial weights (default 1)")
    p.add_argument("--chip-seed", type=int, help="seed of the chip's mismatch and read noise "
                   "(default: --seed)")
    p.add_argument("--hidden", type=int, default=d["hidden"], help="hidden units (default 8)")
    p.add_argument("--bits", type=int, default=d["bits"], help="bits per cell (default 4)")
    p.add_argument("--full-scale-in", type=float, default=d["full_scale_in"],
                   help="largest input weight a cell holds (default 1)")
    p.add_argument("--full-scale-out", type=float, default=d["full_scale_out"],
                   help="largest output weight a cell holds (default 2)")
    g = p.add_argument_group("Metropolis-Hastings")
    g.add_argument("--steps", type=int, default=d["steps"],
                   help=f"MH steps (default {d['steps']})")
    g.add_argument("--burn-in", type=int, help="steps before averaging (default steps/2)")
    g.add_argument("--moves", type=float, default=d["moves"], help="cells moved per proposal "
                   "on average: proposal barrier E0 = log2(2 cells / moves) (default 2)")
    g.add_argument("--barrier", metavar="SCHEDULE", help="proposal barrier E0 in u instead "
                   "of --moves: constant:V, linear:A,B, log:A,S,TAU, exp:A,B or table:FILE")
    g.add_argument("--gain", metavar="SCHEDULE", default=d["gain"], help="gain eta in u per "
                   f"nat of loss, same forms (default {d['gain']}, annealed past the Bayesian "
                   "1/ln2 = 1.4427; constant:1.4427 samples the posterior)")
    g.add_argument("--lanes", type=int, help="lanes of the array "
                   f"(default {d['lanes']}; 1 with --core compact)")
    g.add_argument("--loss-frac-bits", type=int, default=d["loss_frac_bits"],
                   help=f"fraction bits of the loss register (default {d['loss_frac_bits']})")
    g.add_argument("--backend", choices=MH_BACKENDS, default=d["backend"],
                   help="where the array proposes and decides: the golden model, its reference "
                   "loop, the RTL under Verilator, the virtual board or a board (default model)")
    g.add_argument("--core", choices=MH_CORES, default=d["core"], help="the array core of "
                   "--backend verilator or vboard (default pipelined; compact: one lane, "
                   "schedules as tables of 256 entries, on the model too)")
    g.add_argument("--port", help="serial port of --backend board (e.g. /dev/ttyUSB1)")
    g.add_argument("--baud", type=int, help="baud rate of --backend board (default 1000000)")
    g.add_argument("--remeasure", action="store_true",
                   help="evaluate the current state's loss again before every decision (with "
                   "read noise, a chain that keeps its luckiest measurement sticks otherwise)")
    g.add_argument("--average", choices=AVERAGES, default=d["average"],
                   help="posterior mean over the chain's states after burn-in (chain) or over "
                   "the accepted samples after burn-in (accepted) (default chain)")
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="spec format field (barrier_frac_bits, gain_frac_bits, ...)")
    b = p.add_argument_group("backprop")
    b.add_argument("--epochs", type=int, default=d["epochs"],
                   help=f"full-batch Adam epochs (default {d['epochs']})")
    b.add_argument("--lr", type=float, default=d["lr"], help=f"Adam step (default {d['lr']})")
    b.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                   help=f"L2 penalty (default {d['weight_decay']})")
    p.add_argument("--temperature", type=float, default=300.0,
                   help="temperature of the energy report in K (default 300)")
    p.add_argument("--json", metavar="OUT", help="write the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output")


class _Progress:
    """MH progress: steps with rate and ETA, the kept loss and the acceptance rate."""

    def __init__(self, enabled):
        self.enabled, self._bar = enabled, None

    def __call__(self, step, total, trainer):
        if self._bar is None:
            self._bar = bar(total=total, desc="  mh", unit="step", enabled=self.enabled)
        self._bar.update(step - self._bar.n)
        s = trainer.stats
        self._bar.set_postfix_str(
            f"loss {trainer.loss_raw / 2**trainer.loss_frac_bits:.2f} nats, acceptance "
            f"{s['accepted'] / max(s['proposals'], 1):.3f}", refresh=False)
        if step >= total:
            self._bar.close()


def command_train(args):
    options = {k: v for k, v in vars(args).items() if k not in ("command", "json")}
    result = run_training(options, progress=_Progress(not args.quiet))
    print_train_summary(result)
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=1))
        print(f"  wrote {args.json}")
    overflow = result.get("overflow") or {}
    return 1 if any(overflow.values()) else 0


def print_train_summary(r):
    c, m, e = r["config"], r["metrics"], r["energy"]
    print(f"limemu train: {r['method']} on {c['dataset']} ({c['n_train']} training, "
          f"{c['n_test']} test examples), non-ideality {c['nonideality_level']} "
          f"{c['nonideality']}, seed {c['seed']}, chip seed {c['chip_seed']}")
    lay = c["layout"]
    print(f"  network: {lay['inputs']}-{lay['hidden']}-1, {len(r['weights'])} cells x "
          f"{lay['weight_bits']} bits")
    print(f"  test accuracy on the chip {m['test_accuracy']:.4f} (train "
          f"{m['train_accuracy']:.4f}; the same cells on the ideal model "
          f"{m['ideal_test_accuracy']:.4f})")
    if r["method"] == "mh":
        s = r["mh"]
        print(f"  mh: {c['steps']} steps, {s['proposals']} proposals, acceptance "
              f"{s['acceptance_rate']:.3f}, posterior mean of {s['averaged_samples']} samples "
              f"({s['average']})")
        print("counters:")
        for name, value in r["counters"].items():
            flag = "  OVERFLOW" if r["overflow"].get(name) else ""
            print(f"  {name:14s} {value}{flag}")
        print(f"energy (T = {e['temperature_K']:g} K):")
        print(f"  heat released (net)   {e['heat_net_u']:12.6g} u   {e['heat_J']:.3e} J")
        print(f"  heat (gross, sum |D|) {e['heat_abs_u']:12.6g} u   {e['heat_abs_J']:.3e} J")
        print(f"  proposal barrier work {e['barrier_work_u']:12.6g} u")
        print(f"  annealing work        {e['anneal_work_u']:12.6g} u   (the host's: it holds "
              "the loss)")
        print(f"  first law: {r['identities']['first_law']}")
        t = r["throughput"]
        line = f"  {t['steps_per_s']:.0f} MH steps/s on {r['backend']}"
        if "link_bytes_per_step" in t:
            line += (f" ({t['host_calls_per_step']:.1f} device calls a step); over a serial "
                     f"link {t['link_requests_per_step']:.1f} requests, "
                     f"{t['link_bytes_per_step']:.0f} bytes a step: at most "
                     f"{t['link_steps_per_s']:.0f} steps/s at {t['link_baud']} baud; "
                     f"{t['core_cycles_per_step']:.1f} core cycles a step")
        print(line)
    else:
        f = r["ideal_float"]
        print(f"  backprop (float, ideal model): test accuracy {f['test_accuracy']:.4f}")
    print(f"  forward/backward multiply-accumulates {e['macs']:.3g} "
          f"(conventional digital at 10 pJ each: {e['conventional_J']:.3g} J)")
