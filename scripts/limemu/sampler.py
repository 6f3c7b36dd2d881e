"""limemu as a dimod sampler: ``LimSampler().sample(bqm)`` on any backend.

A binary quadratic model (spin or binary variables, any hashable labels) becomes an Ising
problem on the array's integer Q and b (ising.py: the scaling and rounding rule); every read is
an independent run of ``num_sweeps`` steps from its own seed, annealed over ``beta_range``.
The sample set holds the final states in the model's vartype with dimod's energies of them;
its info holds the scaling, the schedules that ran and each read's counters and energy report.
Needs dimod: ``pip install limemu[dimod]``.
"""

import math
from typing import Any

import dimod
import numpy as np

from limemu.model.errors import ConfigError, require

from .backends import BACKENDS
from .ising import DEFAULT_LEVELS, ising_problem, read_seeds, run_reads
from .problems import quadratic
from .specs import make_spec

BETA_SCHEDULE_TYPES = {"geometric": "exp", "linear": "linear"}
#: the gain gets 10 fraction bits (the barrier then 12, and 18 bits for barriers up to 64 u):
#: the hot end of an anneal of a problem scaled to DEFAULT_LEVELS needs gains of about 1e-3 u
#: per loss unit
DEFAULT_FORMATS = {"barrier_bits": 18, "barrier_frac_bits": 12, "gain_frac_bits": 10}
DEFAULTS = {
    "num_reads": 1, "num_sweeps": 1000, "seed": None, "backend": "model", "beta_range": None,
    "beta_schedule_type": "geometric", "barrier": "constant:1", "lanes": 1, "order": "natural",
    "levels": DEFAULT_LEVELS, "formats": DEFAULT_FORMATS, "scheduler": None, "progress": True,
    "backend_options": None,
}
HOT_ACCEPTANCE = 0.5        # default beta_range: the largest flip, uphill, at the hot end
COLD_ACCEPTANCE = 0.01      # and the smallest nonzero one at the cold end


class LimSampler(dimod.Sampler):
    """A dimod sampler running on limemu's array: the golden model (``backend="model"``, the
    default), the RTL under Verilator, the virtual board or an FPGA board.

    Parameters of ``sample`` (defaults may also be given to the constructor):
    num_reads (independent runs), num_sweeps (steps of each), seed (int or None), backend,
    beta_range ((hot, cold) inverse temperatures in the units of the model's energy, as for
    simulated annealing; default from the problem), beta_schedule_type (``geometric`` or
    ``linear``), barrier (the barrier schedule in u, e.g. ``"constant:1"``), lanes, order
    (``natural``, ``colour``), levels (the rounding rule's integer range), formats (the
    spec's fixed-point formats), scheduler (a Dask scheduler address: reads run there),
    progress, backend_options (e.g. ``{"port": "/dev/ttyUSB1"}`` for a board).
    """

    def __init__(self, **defaults: Any):
        unknown = sorted(set(defaults) - set(DEFAULTS))
        require(not unknown, "LimSampler", unknown, f"unknown parameters; known: "
                f"{', '.join(DEFAULTS)}")
        self.defaults = {**DEFAULTS, **defaults}

    @property
    def parameters(self) -> dict[str, list]:
        return {name: (["backends"] if name == "backend" else
                       ["beta_schedule_types"] if name == "beta_schedule_type" else [])
                for name in DEFAULTS}

    @property
    def properties(self) -> dict[str, Any]:
        return {"backends": BACKENDS, "beta_schedule_types": tuple(BETA_SCHEDULE_TYPES),
                "defaults": dict(self.defaults),
                "rounding": "ising.py / docs/api.md: scale 1 for integer biases, else the "
                            "smallest integer making them integers, else levels / max|bias|"}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        """Sample `bqm`: one row per read, energies of the model's own biases."""
        known = {k: v for k, v in parameters.items() if k in DEFAULTS}
        self.remove_unknown_kwargs(**{k: v for k, v in parameters.items() if k not in known})
        o = {**self.defaults, **known}
        require(isinstance(o["num_reads"], int) and o["num_reads"] >= 1, "num_reads",
                o["num_reads"], "must be an integer >= 1")
        require(isinstance(o["num_sweeps"], int) and o["num_sweeps"] >= 1, "num_sweeps",
                o["num_sweeps"], "must be an integer >= 1")
        require(o["backend"] in BACKENDS, "backend", o["backend"], f"must be one of {BACKENDS}")
        variables = list(bqm.variables)
        if not variables:
            samples = np.empty((o["num_reads"], 0), dtype=np.int8)
            return dimod.SampleSet.from_samples_bqm((samples, variables), bqm,
                                                    info={"reads": []})
        linear, (rows, cols, biases), _ = bqm.spin.to_numpy_vectors(variables)
        problem, scaling = ising_problem(len(variables), linear, rows, cols, biases,
                                         levels=o["levels"], name="bqm")
        workload = quadratic(problem, bits=1)
        spec, beta_range = self._spec(workload, scaling.scale, o)
        specs = [spec.replace(seed=s) for s in read_seeds(o["seed"], o["num_reads"])]
        reads = run_reads(problem, specs, o["num_sweeps"], o["backend"],
                          dict(o["backend_options"] or {}), scheduler=o["scheduler"],
                          progress=o["progress"])
        spins = np.array([read.pop("spins") for read in reads], dtype=np.int8)
        samples = spins if bqm.vartype is dimod.SPIN else (spins + 1) // 2
        info = {**scaling.info(), "backend": o["backend"], "num_sweeps": o["num_sweeps"],
                "beta_range": list(beta_range),
                "beta_range_realised": realised_beta_range(spec, o["num_sweeps"], scaling.scale),
                "gain": spec.gain.describe(spec.gain_frac_bits, "u/loss"),
                "barrier": spec.barrier.describe(spec.barrier_frac_bits, "u"), "reads": reads}
        return dimod.SampleSet.from_samples_bqm((samples, variables), bqm, info=info)

    def _spec(self, workload, scale, o):
        """The spec of the reads (seed 0, replaced per read) and the beta range it anneals."""
        probe = make_spec(workload, o["num_sweeps"], barrier="constant:0", formats=o["formats"])
        if o["beta_range"] is None:
            beta_range = default_beta_range(workload.problem, scale)
        else:
            beta_range = check_beta_range(o["beta_range"])
        kind = BETA_SCHEDULE_TYPES.get(o["beta_schedule_type"])
        require(kind is not None, "beta_schedule_type", o["beta_schedule_type"],
                f"must be one of {tuple(BETA_SCHEDULE_TYPES)}")
        lsb = 2.0 ** -probe.gain_frac_bits
        top = (2 ** probe.gain_bits - 1) * lsb
        gains = [min(max(beta / (scale * math.log(2)), lsb), top) for beta in beta_range]
        spec = make_spec(workload, o["num_sweeps"], lanes=o["lanes"], order=o["order"],
                         barrier=o["barrier"], gain=f"{kind}:{gains[0]!r},{gains[1]!r}",
                         seed=0, formats=o["formats"])
        return spec, beta_range


def default_beta_range(problem, scale):
    """(hot, cold) in the units of the model's energy: at the hot end the largest possible
    flip (2 max_i(sum_j |Q_ij| + |b_i|) on the integers) is accepted uphill with relative
    probability HOT_ACCEPTANCE, at the cold end the smallest nonzero one (twice the smallest
    nonzero |bias|) with COLD_ACCEPTANCE."""
    entries = np.abs(problem.data)
    sums = np.concatenate(([0], np.cumsum(entries)))
    row_sums = sums[problem.indptr[1:]] - sums[problem.indptr[:-1]] + np.abs(problem.b)
    largest = 2 * int(np.max(row_sums, initial=0))
    nonzero = np.concatenate((entries, np.abs(problem.b)))
    nonzero = nonzero[nonzero > 0]
    if largest == 0:
        return (1.0, 1.0)                         # no bias: every state is as likely
    smallest = 2 * int(np.min(nonzero))
    # P(accept) = exp(-beta dE) with dE = dL / scale
    return (math.log(1 / HOT_ACCEPTANCE) * scale / largest,
            math.log(1 / COLD_ACCEPTANCE) * scale / smallest)


def check_beta_range(beta_range):
    ok = isinstance(beta_range, (tuple, list)) and len(beta_range) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) and b > 0
        for b in beta_range)
    if not ok:
        raise ConfigError(f"beta_range = {beta_range!r}: must be (hot, cold), two numbers > 0")
    return (float(beta_range[0]), float(beta_range[1]))


def realised_beta_range(spec, steps, scale):
    """The inverse temperatures the gain's format realises at the first and the last step."""
    raw = spec.gain.values_at([0, max(0, steps - 1)])
    return [float(r) * 2.0 ** -spec.gain_frac_bits * scale * math.log(2) for r in raw]


__all__ = ["LimSampler"]
