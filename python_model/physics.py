"""Analytic physics of a LIM cell and the energy bounds (docs/physics.md §1, §4, §6, §10).

Floating point throughout: these are the reference formulas that reports, the calculator
(``limemu bound``) and the tests use, not the bit-exact fixed-point kinetics of the array.

Energies are in the Landauer unit ``u = k_B T ln 2`` unless a name ends in ``_J`` (joules).
Rates are per attempt (one step of one cell). The element-wise functions accept scalars
(and return floats) or NumPy arrays (and return arrays).
"""

import itertools
import math

import numpy as np

from .errors import require

K_B = 1.380649e-23               #: Boltzmann constant, J/K (exact, SI 2019)
LN2 = math.log(2.0)              #: ln 2: one bit in nats
MAX_BOLTZMANN_STATES = 2**20     #: largest state space boltzmann_distribution enumerates
ADMISSIBLE_TOL = 1e-12           #: float slack on p+ + p- <= 1 at the boundary of admissibility
CONVENTIONAL_J_PER_OP = 1e-11    #: 10 pJ/op: ~1e17 J for ~1e28 operations (seeds, Fig. 5)


# -- argument checks ----------------------------------------------------------------------------
def _first_bad(a, ok):
    """The first element of ``a`` where ``ok`` is false (for the error message)."""
    a, ok = np.broadcast_arrays(np.asarray(a), np.asarray(ok))
    return a.reshape(-1)[int(np.argmin(ok.reshape(-1)))].item()


def _real(name, x, lo=None, lo_open=False, hi=None, hi_open=False):
    """``x`` as a float array (0-d for scalars), finite and inside the given bounds."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        require(False, name, x, "must be a real number or an array of them")
    ok = np.isfinite(a)
    require(np.all(ok), name, _first_bad(a, ok), "must be finite")
    if lo is not None:
        ok = a > lo if lo_open else a >= lo
        require(np.all(ok), name, _first_bad(a, ok), f"must be {'>' if lo_open else '>='} {lo}")
    if hi is not None:
        ok = a < hi if hi_open else a <= hi
        require(np.all(ok), name, _first_bad(a, ok), f"must be {'<' if hi_open else '<='} {hi}")
    return a


def _scalar(name, x, **bounds):
    a = _real(name, x, **bounds)
    require(a.ndim == 0, name, x, "must be a single number")
    return float(a)


def _integer(name, x):
    require(isinstance(x, (int, np.integer)) and not isinstance(x, bool), name, x,
            "must be an integer")
    return int(x)


def _out(a):
    """A float for 0-d results, the array otherwise."""
    return float(a) if np.ndim(a) == 0 else a


# -- units --------------------------------------------------------------------------------------
def landauer_unit_J(T=300.0):
    """The Landauer unit u = k_B T ln 2 in J at temperature ``T`` in K (2.871e-21 J at 300 K)."""
    return _out(K_B * _real("T", T, lo=0.0, lo_open=True) * LN2)


def u_to_joules(u, T=300.0):
    """Energy ``u`` in Landauer units converted to J at temperature ``T`` in K."""
    return _out(_real("u", u) * landauer_unit_J(T))


# -- one cell: crossing probabilities and rates (docs/physics.md §4) ------------------------------
def crossing_probabilities(E0, D):
    """Per-attempt probabilities ``(p_plus, p_minus)`` of a cell with barrier ``E0`` (u >= 0).

    The up move releases ``D`` (u) and crosses ``E0 - D/2``: ``p_plus = 2**-(E0 - D/2)``;
    the down move releases ``-D`` and crosses ``E0 + D/2``: ``p_minus = 2**-(E0 + D/2)``.
    Values above 1 (or a sum above 1) mean the step is inadmissible; see :func:`is_admissible`.
    """
    E0 = _real("E0", E0, lo=0.0)
    D = _real("D", D)
    return _out(np.exp2(D / 2 - E0)), _out(np.exp2(-D / 2 - E0))


def net_rate(E0, D):
    """Net update rate ``J = p_plus - p_minus`` per attempt (barrier ``E0`` and tilt ``D`` in u)."""
    p_plus, p_minus = crossing_probabilities(E0, D)
    return _out(np.asarray(p_plus) - np.asarray(p_minus))


def e0_at_max_rate(D):
    """Barrier in u at which ``p_plus + p_minus = 1``: ``log2(2**(D/2) + 2**(-D/2))`` (>= 1 u).

    The lowest admissible barrier for tilt ``D`` (u), where the net rate reaches ``j_max(D)``.
    """
    D = _real("D", D)
    return _out(np.logaddexp2(D / 2, -D / 2))


def normalized_rate(E0, D):
    """Normalised rate ``r = net_rate / j_max`` of Fig. 3A (barrier ``E0`` and tilt ``D`` in u).

    Algebraically ``r = p_plus + p_minus = 2**(e0_at_max_rate(D) - E0)``, computed in that form:
    no division, no overflow, and ``r <= 1`` exactly when the step is admissible. At ``D = 0``
    (``J = J_max = 0``) this is the limit ``D -> 0`` of ``J / J_max``, ``2**(1 - E0)``.
    """
    E0 = _real("E0", E0, lo=0.0)
    return _out(np.exp2(np.asarray(e0_at_max_rate(D)) - E0))


def is_admissible(E0, D):
    """True where ``p_plus + p_minus <= 1`` (to ADMISSIBLE_TOL, the float rounding at the edge)."""
    r = np.asarray(normalized_rate(E0, D))
    ok = r <= 1.0 + ADMISSIBLE_TOL
    return bool(ok) if ok.ndim == 0 else ok


def j_max(D):
    """Largest admissible net rate per attempt that tilt ``D`` (u) drives: ``tanh(D ln2 / 2)``."""
    return _out(np.tanh(_real("D", D) * LN2 / 2))


def d_min(J):
    """Minimal tilt, i.e. heat per net update, in u at net rate ``J`` in [0, 1) per attempt.

    ``(2 / ln2) artanh(J)``, the inverse of :func:`j_max`: 0 at J = 0, exactly 1 u at J = 1/3,
    unbounded as J -> 1 (docs/physics.md §10).
    """
    J = _real("J", J, lo=0.0, hi=1.0, hi_open=True)
    return _out(2.0 / LN2 * np.arctanh(J))


# -- the stationary distribution (docs/physics.md §6) --------------------------------------------
def boltzmann_distribution(Q, b, eta, w_lo, w_hi, delta):
    """Every state of a small array and its exact stationary probability.

    ``n`` cells, each ``W`` in ``{w_lo, w_lo + delta, ..., w_hi}`` (integers), loss
    ``L(W) = 1/2 W^T Q W - b^T W`` (``Q`` symmetric n x n, ``b`` length n, loss units) and gain
    ``eta`` (u per loss unit, >= 0): ``P(W)`` proportional to ``2**(-eta L(W))``, normalised in
    log space (no overflow for any finite ``eta L``).

    Returns ``(states, probs)``: an int64 array (S, n) in lexicographic order (the last cell
    varies fastest) and a float array (S,) summing to 1. Refuses more than 2**20 states.
    """
    Q = _real("Q", Q)
    require(Q.ndim == 2 and Q.shape[0] == Q.shape[1] and Q.shape[0] >= 1, "Q",
            f"shape {Q.shape}", "must be a square matrix with at least one row")
    require(np.array_equal(Q, Q.T), "Q", "not symmetric", "must be symmetric")
    n = Q.shape[0]
    b = _real("b", b)
    require(b.shape == (n,), "b", f"shape {b.shape}", f"must have {n} entries")
    eta = _scalar("eta", eta, lo=0.0)
    w_lo, w_hi, delta = _integer("w_lo", w_lo), _integer("w_hi", w_hi), _integer("delta", delta)
    require(delta >= 1, "delta", delta, "must be >= 1")
    require(w_hi >= w_lo, "w_hi", w_hi, f"must be >= w_lo = {w_lo}")
    require((w_hi - w_lo) % delta == 0, "w_hi", w_hi,
            f"w_hi - w_lo must be a multiple of delta = {delta}")
    levels = (w_hi - w_lo) // delta + 1
    count = levels**n
    require(count <= MAX_BOLTZMANN_STATES, "states", f"{levels}**{n} = {count}",
            f"must be <= 2**20 = {MAX_BOLTZMANN_STATES} to enumerate")
    ladder = range(w_lo, w_hi + 1, delta)
    states = np.array(list(itertools.product(ladder, repeat=n)), dtype=np.int64).reshape(count, n)
    W = states.astype(np.float64)
    loss = 0.5 * np.einsum("si,ij,sj->s", W, Q, W) - W @ b
    log2_weight = -eta * loss
    log2_weight -= log2_weight.max()
    probs = np.exp2(log2_weight)
    probs /= probs.sum()
    return states, probs


# -- bounds (docs/physics.md §10) ---------------------------------------------------------------
def landauer_bound_u(n_params, bits):
    """Landauer bound in u on reaching a solution: erasing ``n_params`` parameters of ``bits`` bits.

    ``n_params * bits`` (``bits`` >= 1; ``log2`` of the number of levels for other ladders).
    """
    n_params = _scalar("n_params", n_params, lo=0.0)
    bits = _scalar("bits", bits, lo=1.0)
    return n_params * bits


def speed_bound_u(net_updates, J):
    """Speed bound in u: ``net_updates * d_min(J)``, the minimal heat of that many net updates
    made at net rate ``J`` per attempt."""
    net_updates = _scalar("net_updates", net_updates, lo=0.0)
    return net_updates * d_min(_scalar("J", J))


def energy_to_solution(heat_u, n_params, bits, net_updates, evaluations, barrier_work_u=0.0,
                       temperature_K=300.0):
    """Energy-to-solution report of a run: measured heat against the two bounds.

    ``heat_u``: measured net heat (u); ``net_updates``: net moves (|ups - downs| summed over the
    cells); ``evaluations``: cell evaluations (OPS), so the net rate is
    ``net_updates / evaluations`` (0 if there were none); ``barrier_work_u``: consolidation work
    (u, reported, not part of the ratios); ``temperature_K`` converts u to J.

    Returns a dict (energies in u and J). A ratio whose bound is 0 is None. At net rate 1 the
    speed bound is infinite (``math.inf``) and its ratio 0.
    """
    heat_u = _scalar("heat_u", heat_u)
    bits = _scalar("bits", bits, lo=1.0)
    n_params = _scalar("n_params", n_params, lo=0.0)
    evaluations = _scalar("evaluations", evaluations, lo=0.0)
    net_updates = _scalar("net_updates", net_updates, lo=0.0)
    require(net_updates <= evaluations, "net_updates", net_updates,
            f"must be <= evaluations = {evaluations:g} (at most one move per evaluation)")
    barrier_work_u = _scalar("barrier_work_u", barrier_work_u, lo=0.0)
    temperature_K = _scalar("temperature_K", temperature_K, lo=0.0, lo_open=True)
    u_J = landauer_unit_J(temperature_K)
    rate = net_updates / evaluations if evaluations > 0 else 0.0
    landauer_u = landauer_bound_u(n_params, bits)
    speed_u = math.inf if rate >= 1.0 else speed_bound_u(net_updates, rate)
    return {
        "heat_u": heat_u,
        "heat_J": heat_u * u_J,
        "barrier_work_u": barrier_work_u,
        "barrier_work_J": barrier_work_u * u_J,
        "landauer_bound_u": landauer_u,
        "landauer_bound_J": landauer_u * u_J,
        "net_rate": rate,
        "speed_bound_u": speed_u,
        "speed_bound_J": speed_u * u_J,
        "ratio_to_landauer": heat_u / landauer_u if landauer_u > 0 else None,
        "ratio_to_speed_bound": heat_u / speed_u if speed_u > 0 else None,
        "temperature_K": temperature_K,
    }


# -- the model-agnostic projection (arXiv 2402.14878's headline, docs/physics.md §10) ------------
def projection(params, ops, bits, temperature_K=300.0,
               conventional_J_per_op=CONVENTIONAL_J_PER_OP, measured_u_per_op=None):
    """Energy to train a model of ``params`` parameters with ``ops`` model-update operations.

    LIM: each operation is a ``bits``-bit update costing ``bits`` u (``lim_J``); Landauer on the
    result alone: erasing the final parameters once (``landauer_params_J``); conventional digital
    hardware: ``conventional_J_per_op`` J per operation (``conventional_J``); and, when given,
    the emulator's measured heat per operation in u (``measured_J``). Energies in J (and u).
    1e15 parameters, 1e28 operations, 300 K: 4.6e8 J (16 bit), 9.2e8 J (32 bit), 1e17 J
    conventional. ``assumptions`` lists every assumption in plain words.
    """
    params = _scalar("params", params, lo=0.0, lo_open=True)
    ops = _scalar("ops", ops, lo=0.0, lo_open=True)
    bits = _scalar("bits", bits, lo=1.0)
    temperature_K = _scalar("temperature_K", temperature_K, lo=0.0, lo_open=True)
    conventional_J_per_op = _scalar("conventional_J_per_op", conventional_J_per_op,
                                    lo=0.0, lo_open=True)
    if measured_u_per_op is not None:
        measured_u_per_op = _scalar("measured_u_per_op", measured_u_per_op, lo=0.0)
    u_J = landauer_unit_J(temperature_K)
    lim_u = ops * bits
    landauer_params_u = params * bits
    conventional_J = ops * conventional_J_per_op
    result = {
        "params": params,
        "ops": ops,
        "bits": bits,
        "temperature_K": temperature_K,
        "u_J": u_J,
        "lim_u": lim_u,
        "lim_J": lim_u * u_J,
        "landauer_params_u": landauer_params_u,
        "landauer_params_J": landauer_params_u * u_J,
        "conventional_J_per_op": conventional_J_per_op,
        "conventional_J": conventional_J,
        "ratio_conventional_to_lim": conventional_J / (lim_u * u_J),
        "measured_u_per_op": measured_u_per_op,
        "measured_u": None,
        "measured_J": None,
        "ratio_measured_to_lim": None,
        "ratio_conventional_to_measured": None,
    }
    assumptions = [
        f"1 u = k_B T ln2 = {_g(u_J)} J at T = {_g(temperature_K)} K.",
        f"Every model-update operation is a {_g(bits)}-bit parameter update that dissipates "
        f"{_g(bits)} u (1 u per bit, the Landauer cost of overwriting it): "
        f"LIM energy = operations x {_g(bits)} u.",
        "The LIM figure counts that heat only: no reads, gradient or field computation, data "
        "movement, control, clocking or barrier work (consolidation).",
        f"Landauer (parameters) = erasing the {_g(params)} final {_g(bits)}-bit parameters once; "
        "it bounds the information in the result, not the intermediate updates.",
        f"Conventional = operations x {_g(conventional_J_per_op * 1e12)} pJ per operation, the "
        "digital energy implied by Fig. 5 of arXiv 2402.14878 (~1e17 J for ~1e28 operations).",
        "LIM and conventional hardware perform the same number of operations.",
    ]
    if measured_u_per_op is not None:
        measured_u = ops * measured_u_per_op
        result["measured_u"] = measured_u
        result["measured_J"] = measured_u * u_J
        result["ratio_measured_to_lim"] = measured_u / lim_u
        result["ratio_conventional_to_measured"] = (
            conventional_J / result["measured_J"] if measured_u > 0 else None)
        assumptions.append(
            f"Measured = operations x {_g(measured_u_per_op)} u per operation, the heat per cell "
            "evaluation measured by the emulator, assumed to scale linearly to this size.")
    result["assumptions"] = assumptions
    return result


def _g(x):
    """A number with 3 significant digits."""
    return f"{x:.3g}"


def format_projection(result):
    """Human-readable text of a :func:`projection` result (used by ``limemu bound``)."""
    r = result
    rows = [
        ("parameters", _g(r["params"])),
        ("operations", _g(r["ops"])),
        ("bits per update", _g(r["bits"])),
        (f"LIM ({_g(r['bits'])} u per operation)", f"{_g(r['lim_J'])} J  ({_g(r['lim_u'])} u)"),
        ("Landauer, final parameters",
         f"{_g(r['landauer_params_J'])} J  ({_g(r['landauer_params_u'])} u)"),
        (f"conventional ({_g(r['conventional_J_per_op'] * 1e12)} pJ per operation)",
         f"{_g(r['conventional_J'])} J"),
    ]
    if r.get("measured_J") is not None:
        rows.append((f"measured ({_g(r['measured_u_per_op'])} u per operation)",
                     f"{_g(r['measured_J'])} J  ({_g(r['measured_u'])} u)"))
    rows.append(("conventional / LIM", _g(r["ratio_conventional_to_lim"])))
    if r.get("ratio_conventional_to_measured") is not None:
        rows.append(("conventional / measured", _g(r["ratio_conventional_to_measured"])))
    width = max(len(label) for label, _ in rows)
    lines = [f"Energy projection at {_g(r['temperature_K'])} K "
             f"(1 u = k_B T ln2 = {_g(r['u_J'])} J)"]
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    lines.append("Assumptions:")
    lines += [f"  - {a}" for a in r["assumptions"]]
    return "\n".join(lines)
