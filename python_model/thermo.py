"""Exact distributions of small arrays, and the second law checked against them.

An array of N cells with L wells each has L**N states; up to MAX_STATES of them are
enumerated here and the distribution over them is propagated exactly, with the array's own
transition probabilities: the crossing units' outcome counts over the 2**32 draws (scaled
inadmissible steps included, crossing.outcome_counts), blocked moves at the ladder's ends,
the update order group by group, and the schedules of E0 and eta (or the caller's tilts).

Within a group every lane decides against the state at the group's start, so the group's
kernel is a product over its cells given that state. Cells that are not coupled to another
cell of their group decide on values that the group does not change: they are updated one
after the other. Coupled cells of a group (natural order with several lanes) are updated
jointly, over every combination of their moves: that simultaneous update is what the
hardware does, and why counted heat and energy then differ (the coupling error).

Beside the distributions p_k the propagation gives exact expectations over all runs: the
mean net heat, and the mean of 2**(-Sigma) with the entropy production of a run

    Sigma = Q_net / u + log2 p_0(s_0) - log2 p_K(s_K)          (bits)

computed with the heat the counters count. When every move has detailed balance (its counted
heat is log2 of the ratio of its forward and backward probabilities), the integral
fluctuation theorem fixes that mean: 1 when p_0 covers every state, else the probability
that the time-reversed process ends where p_0 > 0 (propagated too); and <Sigma> >= 0 gives
the Clausius bound <Q_net> >= H(p_0) - H(p_K). The crossing unit is not exactly 2**-B
(thresholds to 2**-10, a 16-bit compare in scaled steps, 0 from 34 u on), so the exact mean
is off by about that precision; coupled groups, and scaled steps of cells with Q_nn != 0,
break detailed balance outright.
"""

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .crossing import ONE, outcome_counts, threshold_table
from .engine import LimArray, checked_half_tilts
from .errors import ConfigError, require
from .order import update_order

MAX_STATES = 1 << 16            # 16 spins, 8 cells of 2 bits, 4 cells of 4 bits
MAX_JOINT_WORK = 1 << 22        # states x move combinations of one joint update (memory)
CHI_SQUARE_SIGNIFICANCE = 1e-3
CHI_SQUARE_MIN_EXPECTED = 5     # rarer states are merged into one bin
IFT_STDERRS = 4                 # runs' <2^-Sigma> further than this from the theorem fail
IFT_MIN_RUNS = 20               # fewer runs: their standard error means too little to test
DETAILED_BALANCE_TOLERANCE = 0.01   # exact <2^-Sigma> / theorem - 1 the crossing unit allows
REPORT_WORK = 1 << 28           # cell-state updates the energy report spends on the bound
#: the energy reports' one line on the two bounds
BELOW_LANDAUER = ("net heat can fall below N*b: N*b assumes a certain final state; the mean "
                  "obeys <Q_net> >= H0 - HK")


class StateSpace:
    """Every state of an array: cell c is digit c (of L) of the state's index."""

    def __init__(self, spec):
        self.spec = spec
        self.levels = (spec.w_hi - spec.w_lo) // spec.delta + 1
        n = spec.cells
        require(n * math.log2(self.levels) <= math.log2(MAX_STATES), "cells", n,
                f"exact distributions enumerate {self.levels}**cells states: at most "
                f"{MAX_STATES} (16 spins, 8 cells of 2 bits, 4 cells of 4 bits)")
        self.size = self.levels ** n
        self.stride = self.levels ** np.arange(n, dtype=np.int64)
        codes = np.arange(self.size, dtype=np.int64)
        self.digits = (codes[:, None] // self.stride[None, :]) % self.levels
        self.weights = spec.w_lo + spec.delta * self.digits

    def index(self, weights):
        """State index of weights (one state, or one per row)."""
        w = np.asarray(weights, dtype=np.int64)
        return ((w - self.spec.w_lo) // self.spec.delta) @ self.stride


def initial_distribution(spec, space, problem=None):
    """The distribution a run's start is drawn from: uniform over the ladder for
    init = 'random' (LimArray draws it from the run seed), else LimArray's fixed start."""
    if spec.init == "random":
        return np.full(space.size, 1.0 / space.size)
    p0 = np.zeros(space.size)
    p0[space.index(LimArray(spec, problem).W0)] = 1.0
    return p0


def entropy_bits(p):
    """Shannon entropy of a distribution in bits."""
    q = p[p > 0]
    return float(-np.sum(q * np.log2(q))) + 0.0          # + 0.0: no "-0" bits


@dataclass
class ExactRun:
    """Exact figures of a configuration over all its runs (see the module docstring)."""

    space: StateSpace
    p0: np.ndarray
    p_final: np.ndarray
    entropy_bits: np.ndarray      # H(p_k) for k = 0..K
    mean_heat_u: float            # <Q_net> in u
    ift: float                    # <2^-Sigma> with the counted heat (nan if not computed)
    ift_theorem: float            # what the fluctuation theorem says <2^-Sigma> is
    coupled_groups: int           # groups updated jointly (coupled cells in one group)

    @property
    def clausius_bound_u(self):
        """H(p_0) - H(p_K): the least mean net heat the second law allows, in u."""
        return float(self.entropy_bits[0] - self.entropy_bits[-1])


class ExactChain:
    """The array's Markov chain over every state, step by step.

    advance(k, vectors) moves row 0 (a distribution) and, if present, row 1 (the tilted
    vector of the fluctuation theorem: each move also weighted by 2^-heat) from step k to
    k + 1; it returns them and the mean heat released in the step (energy LSBs)."""

    def __init__(self, spec, problem=None, half_tilt=None):
        self.spec, self.problem, self.half_tilt = spec, problem, half_tilt
        self.space = StateSpace(spec)
        self.table = threshold_table(spec.barrier_frac_bits, spec.mantissa_bits)
        digits, levels = self.space.digits, self.space.levels
        self.at_top, self.at_bottom = digits == levels - 1, digits == 0
        self._cached = (None, None, None)       # (e0, eta), their factors, joint weights
        self._joint_moves_of = {}
        if spec.tilt == "field":
            require(problem is not None, "problem", None, "tilt = 'field' needs a problem")
            self._setup_field()
        else:
            require(callable(half_tilt), "half_tilt", half_tilt,
                    "tilt = 'external' needs half_tilt(step, weights)")
            self.updates = None

    def _setup_field(self):
        """The updates of a step (a group's cells, jointly where coupled) and, per cell, the
        distinct (dL2 of the up move, end of the ladder) among all states."""
        spec, problem, d = self.spec, self.problem, self.spec.delta
        order = update_order(spec.cells, spec.lanes, spec.order, problem)
        dense = problem.to_dense()
        field = self.space.weights @ dense - problem.b[None, :]        # Q is symmetric
        dl_up = 2 * d * field + d * d * problem.diag[None, :]
        self.cell_keys = []
        for cell in range(spec.cells):
            pairs = np.stack([dl_up[:, cell], self.at_top[:, cell], self.at_bottom[:, cell]])
            unique, key = np.unique(pairs, axis=1, return_inverse=True)
            dl_down = 2 * d * d * int(problem.diag[cell]) - unique[0]
            self.cell_keys.append((key.reshape(-1), unique[0], dl_down, unique[1] == 1,
                                   unique[2] == 1))
        self.updates = []
        for group in range(order.groups):
            cells = order.sequence[order.group == group]
            coupled = (dense[np.ix_(cells, cells)] != 0) & ~np.eye(len(cells), dtype=bool)
            self.updates += [tuple(c) for c in _components(cells, coupled)]
        for cells in self.updates:
            self._check_joint(cells, "lanes", spec.lanes,
                              "use order = 'colour' (independent groups) or fewer lanes")

    def _check_joint(self, cells, parameter, value, advice):
        work = 3 ** len(cells) * self.space.size
        require(work <= MAX_JOINT_WORK, parameter, value,
                f"{len(cells)} coupled cells decide together: their exact joint update takes "
                f"3**{len(cells)} x {self.space.size} states > {MAX_JOINT_WORK}; {advice}")

    @property
    def coupled_groups(self):
        return 0 if self.updates is None else sum(len(c) > 1 for c in self.updates)

    def advance(self, k, vectors, reverse=False):
        """Step k on `vectors`; reverse = True applies its updates in the opposite order
        (a step of the time-reversed process)."""
        spec = self.spec
        e0 = int(spec.barrier.values_at([k])[0])
        if spec.tilt != "field":
            return self._advance_external(k, e0, vectors, reverse)
        eta = int(spec.gain.values_at([k])[0]) << spec.tilt_shift
        if self._cached[0] != (e0, eta):        # schedules often hold a value for many steps
            self._cached = ((e0, eta), [self._field_factors(cell, e0, eta)
                                        for cell in range(spec.cells)], {})
        _, factors, joint_weights = self._cached
        heat = 0.0
        for cells in (self.updates[::-1] if reverse else self.updates):
            vectors, update_heat = self._update(vectors, cells, [factors[c] for c in cells],
                                                joint_weights)
            heat += update_heat
        return vectors, heat

    def _field_factors(self, cell, e0, eta):
        key, dl_up, dl_down, top, bottom = self.cell_keys[cell]
        return _factors(key, e0 + eta * dl_up, e0 + eta * dl_down, -2 * eta * dl_up,
                        -2 * eta * dl_down, top, bottom, self.table, self.spec.energy_lsb_u)

    def _advance_external(self, k, e0, vectors, reverse):
        """External tilts: fixed for the step from the state at its start, so the whole step
        is one simultaneous update; cells whose tilts depend on other cells go jointly."""
        space = self.space
        h = np.stack([checked_half_tilts(self.spec, self.half_tilt(k, w.copy()))
                      for w in space.weights])
        heat = 0.0
        components = _components(np.arange(self.spec.cells), _dependence(h, space))
        for cells in (components[::-1] if reverse else components):
            self._check_joint(cells, "half_tilt", "state-dependent",
                              "tilts of these cells depend on each other's weights")
            factors = []
            for cell in cells:
                pairs = np.stack([h[:, cell], self.at_top[:, cell], self.at_bottom[:, cell]])
                unique, key = np.unique(pairs, axis=1, return_inverse=True)
                half = unique[0]
                factors.append(_factors(key.reshape(-1), e0 - half, e0 + half, 2 * half,
                                        -2 * half, unique[1] == 1, unique[2] == 1, self.table,
                                        self.spec.energy_lsb_u))
            vectors, update_heat = self._update(vectors, tuple(cells), factors)
            heat += update_heat
        return vectors, heat

    def _update(self, vectors, cells, factors, joint_weights=None):
        """One simultaneous update of `cells`: (vectors after it, mean heat in LSBs).
        joint_weights: a memo of the joint updates' weights while the factors hold."""
        heat = sum(float(vectors[0] @ f["heat"]) for f in factors)
        if len(cells) == 1:
            return self._single(vectors, cells[0], factors[0]), heat
        return self._joint(vectors, cells, factors, {} if joint_weights is None
                           else joint_weights), heat

    def _single(self, vectors, cell, f):
        """A cell's move adds or subtracts its stride to the state index; the up (down)
        weight is 0 where the cell is at the top (bottom) of its ladder, so the shifted
        vectors never carry weight across to another cell's digit."""
        stride, rows = int(self.space.stride[cell]), len(vectors)
        out = vectors * f["stay"][None, :]
        out[:, stride:] += (vectors * f["up"][:rows])[:, :-stride]
        out[:, :-stride] += (vectors * f["down"][:rows])[:, stride:]
        return out

    def _joint(self, vectors, cells, factors, memo):
        """Coupled cells decide together from the same state: every combination of their
        outcomes that stays on the ladder, weighted by the product of the cells' factors."""
        source, target, outcomes = self._joint_moves(cells)
        rows = len(vectors)
        if cells not in memo:
            weight = np.ones((2, len(source)))
            for outcome, f in zip(outcomes, factors):
                stacked = np.stack([np.broadcast_to(f["stay"], f["up"].shape), f["up"],
                                    f["down"]], axis=1)           # (rows, outcome, state)
                weight *= stacked[:, outcome, source]
            memo[cells] = weight
        weight = memo[cells]
        out = np.empty_like(vectors)
        for i in range(rows):
            out[i] = np.bincount(target, weights=vectors[i, source] * weight[i],
                                 minlength=self.space.size)
        return out

    def _joint_moves(self, cells):
        """(source state, target state, outcome of each cell: 0 stay, 1 up, 2 down) of every
        combination of the cells' outcomes from every state that stays on the ladder."""
        if cells not in self._joint_moves_of:
            combinations = np.array(list(itertools.product((0, 1, 2), repeat=len(cells))),
                                    dtype=np.int8)
            allowed = np.ones((len(combinations), self.space.size), dtype=bool)
            for j, cell in enumerate(cells):
                on_ladder = np.stack([np.ones(self.space.size, bool), ~self.at_top[:, cell],
                                      ~self.at_bottom[:, cell]])
                allowed &= on_ladder[combinations[:, j]]
            combination, source = np.nonzero(allowed)
            shift = np.array([0, 1, -1])[combinations] @ self.space.stride[list(cells)]
            self._joint_moves_of[cells] = (source, source + shift[combination],
                                           combinations[combination].T)
        return self._joint_moves_of[cells]


def _factors(key, b_up, b_down, heat_up, heat_down, top, bottom, table, lsb):
    """A cell's update over all states, computed once per distinct case and gathered by
    `key`: stay (S,), up and down (2, S) (row 0 the probability, row 1 weighted by 2^-heat)
    and the mean heat released (S,) in LSBs. Blocked moves (at the ladder's ends) stay."""
    n_up, n_down, _ = outcome_counts(b_up, b_down, table)
    p_up = np.where(top, 0, n_up) / ONE
    p_down = np.where(bottom, 0, n_down) / ONE
    # a move that can happen releases more than -68 u (its barrier is below 34 u)
    up = np.stack([p_up, p_up * np.exp2(np.where(p_up > 0, -heat_up * lsb, 0))])
    down = np.stack([p_down, p_down * np.exp2(np.where(p_down > 0, -heat_down * lsb, 0))])
    return {"stay": (1.0 - p_up - p_down)[key], "up": up[:, key], "down": down[:, key],
            "heat": (p_up * heat_up + p_down * heat_down)[key]}


def _components(cells, coupled):
    """Connected components (lists of cells) of the graph `coupled` (a boolean matrix over
    the positions of `cells`, symmetrised here), in the order of their first cell."""
    m = len(cells)
    linked = coupled | coupled.T
    label = list(range(m))

    def root(i):
        while label[i] != i:
            label[i] = label[label[i]]
            i = label[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(linked, 1))):
        label[root(int(j))] = root(int(i))
    groups = {}
    for i in range(m):
        groups.setdefault(root(i), []).append(int(cells[i]))
    return list(groups.values())


def _dependence(h, space):
    """dep[c, c']: the tilt of cell c changes with the weight of cell c' != c."""
    n, levels = space.spec.cells, space.levels
    shape = (levels,) * n                      # C order: the last axis is cell 0
    dep = np.zeros((n, n), dtype=bool)
    for c in range(n):
        tilt = h[:, c].reshape(shape)
        for other in range(n):
            if other != c:
                dep[c, other] = bool(np.any(np.ptp(tilt, axis=n - 1 - other)))
    return dep


def distributions(spec, problem=None, steps=0, half_tilt=None, p0=None):
    """The exact distribution after every step: yields (k, p_k) for k = 0..steps."""
    chain = ExactChain(spec, problem, half_tilt)
    p = initial_distribution(spec, chain.space, problem) if p0 is None else p0
    vectors = p[None, :]
    yield 0, p
    for k in range(int(steps)):
        vectors, _ = chain.advance(k, vectors)
        yield k + 1, vectors[0]


def exact_run(spec, problem=None, steps=0, half_tilt=None, *, tilted=True, progress=None):
    """ExactRun of `steps` steps from the run's initial distribution. tilted = False skips
    the fluctuation theorem (ift and ift_theorem are then nan; a third of the work).
    progress(done, total) is called after every step propagated."""
    steps = int(steps)
    require(steps >= 0, "steps", steps, "must be >= 0")
    chain = ExactChain(spec, problem, half_tilt)
    p0 = initial_distribution(spec, chain.space, problem)
    full = bool(np.all(p0 > 0))
    total = steps * (1 if not tilted else 2 - full)
    # f_0 = 1 on the support of p_0: 2^-Sigma = 2^-Q p_K(s_K) / p_0(s_0) is summed over paths
    vectors = np.stack([p0, (p0 > 0).astype(float)]) if tilted else p0[None, :]
    entropies = [entropy_bits(p0)]
    heat = 0.0
    for k in range(steps):
        vectors, step_heat = chain.advance(k, vectors)
        heat += step_heat
        entropies.append(entropy_bits(vectors[0]))
        if progress is not None:
            progress(k + 1, total)
    p_final = vectors[0]
    ift = theorem = math.nan
    if tilted:
        ift = float(vectors[1] @ p_final)
        theorem = 1.0 if full else _returns_to_start(chain, p0, p_final, steps, progress)
    return ExactRun(space=chain.space, p0=p0, p_final=p_final,
                    entropy_bits=np.array(entropies), mean_heat_u=heat * spec.energy_lsb_u,
                    ift=ift, ift_theorem=theorem, coupled_groups=chain.coupled_groups)


def _returns_to_start(chain, p0, p_final, steps, progress):
    """The fluctuation theorem's right-hand side when p_0 leaves states out: with detailed
    balance, <2^-Sigma> is the probability that the time-reversed process (from p_K, steps
    and updates in the opposite order) ends where p_0 > 0."""
    vectors = p_final[None, :]
    for i, k in enumerate(range(steps - 1, -1, -1)):
        vectors, _ = chain.advance(k, vectors, reverse=True)
        if progress is not None:
            progress(steps + i + 1, 2 * steps)
    return float(vectors[0][p0 > 0].sum())


def entropy_production(exact, heat_u, starts, finals):
    """Sigma of each run (bits): heat_u (R,) in u, starts and finals (R, cells) weights."""
    s0 = exact.space.index(starts)
    s_final = exact.space.index(finals)
    with np.errstate(divide="ignore"):          # a state of probability 0: Sigma = inf
        delta_s = np.log2(exact.p0[s0]) - np.log2(exact.p_final[s_final])
    return np.asarray(heat_u, dtype=float) + delta_s


def second_law_figures(exact, heat_u, starts, finals):
    """The figures of `limemu thermo` from R runs (heat in u, start and final weights) and
    the exact propagation of their configuration. `passed` is False when the runs' mean of
    2^-Sigma differs from the theorem's value by more than IFT_STDERRS standard errors
    (tested from IFT_MIN_RUNS runs),
    when their final states fail a chi-square test against p_K, or when the exact mean
    differs from the theorem's value by more than DETAILED_BALANCE_TOLERANCE (the array's
    own dynamics break detailed balance)."""
    heat_u = np.asarray(heat_u, dtype=float)
    runs = len(heat_u)
    require(runs >= 2, "runs", runs, "need at least 2 for standard errors")
    sigma = entropy_production(exact, heat_u, starts, finals)
    ift_mean, ift_stderr = _mean_and_stderr(np.exp2(-sigma))
    observed = np.bincount(exact.space.index(finals), minlength=exact.space.size)
    chi2, dof, limit = chi_square(observed, exact.p_final)
    mean_heat, heat_stderr = _mean_and_stderr(heat_u)
    mean_sigma, sigma_stderr = _mean_and_stderr(sigma)
    balance = detailed_balance_error(exact)
    figures = {
        "runs": runs,
        "mean_heat_u": mean_heat,
        "mean_heat_stderr_u": heat_stderr,
        "clausius_bound_u": exact.clausius_bound_u,
        "entropy_initial_bits": float(exact.entropy_bits[0]),
        "entropy_final_bits": float(exact.entropy_bits[-1]),
        "mean_entropy_production": mean_sigma,
        "mean_entropy_production_stderr": sigma_stderr,
        "ift_mean": ift_mean,
        "ift_stderr": ift_stderr,
        "ift_theorem": exact.ift_theorem,
        "exact_mean_heat_u": exact.mean_heat_u,
        "exact_ift": exact.ift,
        "detailed_balance_error": balance,
        "chi_square": chi2,
        "chi_square_dof": dof,
        "chi_square_limit": limit,
        "states": exact.space.size,
        "coupled_groups": exact.coupled_groups,
    }
    figures["ift_tested"] = runs >= IFT_MIN_RUNS
    figures["ift_ok"] = bool(not figures["ift_tested"] or
                             abs(ift_mean - exact.ift_theorem) <= IFT_STDERRS * ift_stderr)
    figures["histogram_ok"] = bool(chi2 <= limit)
    figures["detailed_balance_ok"] = bool(balance <= DETAILED_BALANCE_TOLERANCE)
    figures["passed"] = figures["ift_ok"] and figures["histogram_ok"] and \
        figures["detailed_balance_ok"]
    return figures


def detailed_balance_error(exact):
    """|exact <2^-Sigma> / the theorem's value - 1|: of the order of the thresholds'
    precision when every move has detailed balance."""
    if exact.ift_theorem > 0:
        return abs(exact.ift / exact.ift_theorem - 1)
    return 0.0 if exact.ift == 0 else math.inf


def _mean_and_stderr(x):
    if not np.all(np.isfinite(x)):
        return float(np.mean(x)), math.inf
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(len(x)))


def chi_square(observed, probs):
    """(statistic, degrees of freedom, critical value at CHI_SQUARE_SIGNIFICANCE) of the
    counts `observed` against `probs`; states expected fewer than CHI_SQUARE_MIN_EXPECTED
    times are merged into one bin. A count in a state of probability 0 gives inf."""
    expected = probs * observed.sum()
    if np.any(observed[probs <= 0] > 0):
        return math.inf, 0, 0.0
    rare = expected < CHI_SQUARE_MIN_EXPECTED
    obs, exp = observed[~rare], expected[~rare]
    if rare.any() and expected[rare].sum() > 0:
        obs = np.append(obs, observed[rare].sum())
        exp = np.append(exp, expected[rare].sum())
    dof = len(obs) - 1
    if dof < 1:
        return 0.0, 0, math.inf                   # one bin: nothing to test
    chi2 = float(np.sum((obs - exp) ** 2 / exp))
    return chi2, dof, chi_square_limit(dof)


def chi_square_limit(dof, significance=CHI_SQUARE_SIGNIFICANCE):
    """Critical value of chi-square with `dof` degrees of freedom (Wilson-Hilferty)."""
    z = _normal_quantile(1 - significance)
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def _normal_quantile(q):
    """Inverse of the standard normal distribution function (bisection on erf)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clausius_bound(spec, problem, steps, budget=REPORT_WORK):
    """{clausius_bound_u, entropy_initial_bits, entropy_final_bits, states} of a run's
    configuration, or None when it cannot be enumerated or would take more than `budget`
    cell-state updates (states x cells x steps)."""
    if spec.tilt != "field" or problem is None:
        return None
    try:
        space = StateSpace(spec)
    except ConfigError:
        return None
    if space.size * spec.cells * int(steps) > budget:
        return None
    try:
        exact = exact_run(spec, problem, steps, tilted=False)
    except ConfigError:                         # a coupled group too large to update jointly
        return None
    return {"clausius_bound_u": exact.clausius_bound_u,
            "entropy_initial_bits": float(exact.entropy_bits[0]),
            "entropy_final_bits": float(exact.entropy_bits[-1]),
            "states": space.size}
