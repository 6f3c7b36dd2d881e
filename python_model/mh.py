"""Chip-in-the-loop training by Metropolis-Hastings on the array (docs/training.md;
after arXiv 2402.06284).

NumPy and the standard library only. Three parts:

* :class:`Nonideality` and :class:`ChipModel`: the non-ideal forward model, a one-hidden-layer
  network whose weights are the cells of the array, evaluated with seeded, per-chip hardware
  non-idealities the trainer does not know (gain and offset mismatch per weight, a weight DAC
  coarser than the cells, a saturating hidden activation, read noise).
* the fixed-point acceptance: :func:`loss_register`, :func:`state_energy`, :func:`accept`
  and :func:`acceptance_probability`: min(1, 2**(-eta (L' - L))) as one decision of the
  crossing unit (:func:`limemu.model.crossing.decide`).
* :class:`MHTrainer`: proposals from the array's lane generators, acceptance by the crossing
  unit, every event counted in :class:`limemu.model.counters.Counters`, the first law checked
  exactly, and the posterior mean after burn-in as the result.

How a step works (the hardware's view)
--------------------------------------
Step k, with barrier E0(k) and gain eta(k) from the spec's schedules:

1. **Proposal = a zero-tilt step of the array.** Every cell is evaluated by its lane (natural
   order, one draw per lane per group, exactly as the engine draws) against the crossing
   barriers B+ = B- = E0(k): the cell is proposed to move up by delta with probability
   2**-E0, down with probability 2**-E0, else stays. The proposal is symmetric (p+ = p-, the
   same for every state), so Metropolis-Hastings needs no proposal correction. The expected
   number of moved cells is 2 N 2**-E0: E0 = log2(2 N / M) proposes M cells on average.
   A move off either end of the ladder is blocked (counted); blocking keeps the proposal
   symmetric (the reverse of a proposal with a blocked cell is the proposal with the moved
   cells' signs flipped and the blocked cell's sign kept). E0 must stay >= 1 u, so that
   p+ + p- <= 1 (admissible) in every evaluation. A step in which no cell moves is *empty*:
   no forward evaluation, nothing to decide.
2. **Forward evaluation.** The caller's loss function (the chip) returns L' = L(W') for the
   proposed cells; it is read into the loss register (:func:`loss_register`).
3. **Acceptance = one decision of the crossing unit** on one draw of the acceptance unit's own
   generator (``LaneGenerator(seed, lanes)``: lane number ``lanes`` of the run seed, one draw
   per decided proposal):

   * state energies E = eta L and E' = eta L' in energy LSBs (:func:`state_energy`), one
     rounding per state;
   * the proposal is the up outcome of the unit, with crossing barrier
     B+ = E0 - D/2 where D = E - E' is the energy the move releases and the decision barrier
     is set to E0 = |D|/2: B+ = max(0, E' - E). The reverse (down) outcome is switched off by
     giving it the barrier 34 u, whose threshold is exactly 0; so T+ + T- = T+ <= 2**32 and
     every acceptance is admissible (the inadmissible counter never moves here);
   * accept iff u < T(max(0, E' - E)), i.e. with probability exactly
     T(max(0, E' - E)) / 2**32 = min(1, 2**(-(E' - E) 2**-F)) to the table's precision
     (relative error < 2**-10 up to 20 u, docs/physics.md §4).

   On acceptance the cells keep W' and the heat D = E - E' is released; on rejection the
   array reverts the proposal.
4. The gain moves to eta(k+1): the annealing work E(eta(k+1), L) - E(eta(k), L) of the kept
   loss register is the host's (it holds L), so the first law
   heat_net = E(eta(0), L(0)) - E(eta(K), L(K)) + anneal work
   holds exactly with heat_net from the array's counter (checked after every run; a
   violation raises IdentityError).

The array's part (steps 1 and 3, and the revert) is :class:`ModelArray` on the golden model and
``limemu.mh_hardware.HardwareArray`` on the RTL and the boards (the core's ``accept``
command, hdl/regmap.py): the trainer drives both the same way.

Fixed point of eta (L' - L) (the only roundings)
-----------------------------------------------
* the loss register: ``L_raw = floor(L * 2**loss_frac_bits + 1/2)`` (round half up), signed,
  ``LOSS_BITS`` wide; a loss outside it, or not finite, is an error;
* the energy of a state: ``E = (eta_raw * L_raw + 2**(s-1)) >> s`` energy LSBs
  (2**-barrier_frac_bits u), s = gain_frac_bits + loss_frac_bits - barrier_frac_bits (round
  half up; ``E = eta_raw * L_raw << -s``, exact, when s <= 0);
* the acceptance barrier ``max(0, E' - E)``: a difference of two rounded state energies (not
  a rounding of the difference), which is what makes the first law exact.

So the acceptance probability is exactly T(max(0, E' - E)) / 2**32; it differs from
min(1, 2**(-eta (L' - L))) only through these roundings (at most one energy LSB in E' - E,
and 2**-loss_frac_bits in each loss) and the table (relative < 2**-10). When eta * L is a
whole number of LSBs the roundings vanish (tests use that to compare with the exact rule).

Counters (docs/physics.md §9) in this mode
--------------------------------------------
The array counts what it does. steps: MH steps; evaluations: cell evaluations of the
proposal steps (cells per step); up_moves / down_moves: proposed moves (crossings of the
proposal steps); blocked_moves: proposed moves off the ladder; inadmissible: 0 (E0 >= 1 u);
barrier_work: cells x rises of the proposal barrier E0; proposals: decided proposals (steps
that moved a cell); acceptances; reverted_moves: the moves of rejected proposals, undone;
heat_net / heat_abs: sum of D and |D| over accepted proposals. anneal_work and field_adds stay
0: the annealing work and the forward evaluations' multiply-accumulates are the host's
(:attr:`MHResult.stats`: ``anneal_work``, ``forward_macs``).
"""

import math
from dataclasses import dataclass, field, fields

import numpy as np

from .counters import Counters
from .crossing import ONE, ZERO_FROM_U, decide, decide_one, threshold_table
from .errors import ConfigError, IdentityError, require
from .order import update_order
from .rng import LaneGenerator, LaneStreams
from .spec import Spec

LOSS_BITS = 40                 # signed loss register
BLOCK_STEPS = 256              # proposal steps whose draws are generated at once
AVERAGES = ("chain", "accepted")


# -- the non-ideal forward model ----------------------------------------------------------------
@dataclass(frozen=True)
class Nonideality:
    """Hardware non-idealities of a chip (all zero / None: the ideal model).

    * ``gain``: per-weight gain mismatch, lognormal: g = exp(gain * N(0, 1)) (0.5: a factor
      1.65 at one sigma, typical of subthreshold current mirrors);
    * ``offset``: per-weight additive offset, standard deviation in units of the layer's
      full-scale weight;
    * ``quant``: bits the weight DAC resolves (0: as many as the cells). With b-bit cells and
      q < b, cells are read in bins of 2**(b - q) levels at the bin's centre;
    * ``saturation``: the hidden activation saturates: s * tanh(relu(a) / s) instead of
      relu(a) (0: no saturation);
    * ``noise``: read noise, standard deviation of Gaussian noise added to every
      pre-activation (hidden and output) in every evaluation.
    """

    gain: float = 0.0
    offset: float = 0.0
    quant: int = 0
    saturation: float = 0.0
    noise: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "quant":
                require(isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                        and 0 <= value <= 16, "nonideality.quant", value,
                        "must be an integer in [0, 16] (0 = the cells' own resolution)")
            else:
                require(isinstance(value, (int, float)) and not isinstance(value, bool)
                        and math.isfinite(value) and 0 <= value <= 10, f"nonideality.{f.name}",
                        value, "must be a number in [0, 10]")

    @property
    def ideal(self):
        return self == Nonideality()

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The named levels of ``limemu train --nonideality``. Chosen from circuit figures before any
#: training was run, not tuned on results: mild ~ a careful above-threshold design, strong ~
#: subthreshold analog (current-mirror mismatch of tens of percent, few effective bits).
LEVELS = {
    "none": Nonideality(),
    "mild": Nonideality(gain=0.1, offset=0.02, quant=3, saturation=2.0, noise=0.05),
    "strong": Nonideality(gain=0.5, offset=0.1, quant=2, saturation=0.5, noise=0.2),
}
LEVEL_KEYS = tuple(f.name for f in fields(Nonideality))


def parse_nonideality(text):
    """A level name ('none', 'mild', 'strong') or 'key=value,...' over LEVEL_KEYS, starting from
    a level when the first item is a name (e.g. 'strong,noise=0')."""
    require(isinstance(text, str) and text.strip(), "nonideality", text,
            f"must be one of {tuple(LEVELS)} or key=value pairs with keys {LEVEL_KEYS}")
    items = [t.strip() for t in text.split(",") if t.strip()]
    base = Nonideality()
    if items and "=" not in items[0]:
        require(items[0] in LEVELS, "nonideality", text,
                f"level must be one of {tuple(LEVELS)} (or key=value pairs with keys "
                f"{LEVEL_KEYS})")
        base = LEVELS[items.pop(0)]
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        require(sep and key in LEVEL_KEYS, "nonideality", text,
                f"{item!r} must be key=value with key in {LEVEL_KEYS}")
        try:
            changes[key] = int(value) if key == "quant" else float(value)
        except ValueError:
            raise ConfigError(f"nonideality = {text!r}: {key} = {value!r} is not a number") \
                from None
    return Nonideality(**{**base.to_dict(), **changes})


@dataclass(frozen=True)
class NetworkLayout:
    """A one-hidden-layer network on b-bit cells: inputs -> hidden (ReLU) -> one logit.

    Cells, in order: the input weights (inputs x hidden, row-major), the hidden biases
    (hidden), the output weights (hidden), the output bias (1). A cell W (an integer of the
    ladder [-2**(b-1), 2**(b-1) - 1]) stands for the weight W * full_scale / 2**(b-1); the
    full scales are ``full_scale_in`` (input weights, hidden biases) and ``full_scale_out``.
    """

    inputs: int
    hidden: int = 8
    weight_bits: int = 4
    full_scale_in: float = 1.0
    full_scale_out: float = 2.0

    def __post_init__(self):
        require(isinstance(self.inputs, int) and self.inputs >= 1, "inputs", self.inputs,
                "must be an integer >= 1")
        require(isinstance(self.hidden, int) and 1 <= self.hidden <= 1024, "hidden",
                self.hidden, "must be an integer in [1, 1024]")
        require(isinstance(self.weight_bits, int) and 2 <= self.weight_bits <= 16,
                "weight_bits", self.weight_bits, "must be an integer in [2, 16] (multi-level "
                "cells; spins cannot hold network weights)")
        for name in ("full_scale_in", "full_scale_out"):
            value = getattr(self, name)
            require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                    name, value, "must be a number > 0")

    @property
    def cells(self):
        return (self.inputs + 2) * self.hidden + 1

    @property
    def w_lo(self):
        return -(1 << (self.weight_bits - 1))

    @property
    def w_hi(self):
        return (1 << (self.weight_bits - 1)) - 1

    def scales(self):
        """Weight per cell level, per cell (float array)."""
        n_in = (self.inputs + 1) * self.hidden
        s = np.empty(self.cells)
        s[:n_in] = self.full_scale_in / (1 << (self.weight_bits - 1))
        s[n_in:] = self.full_scale_out / (1 << (self.weight_bits - 1))
        return s

    def full_scales(self):
        n_in = (self.inputs + 1) * self.hidden
        fs = np.full(self.cells, float(self.full_scale_out))
        fs[:n_in] = self.full_scale_in
        return fs

    def split(self, w):
        """(input weights (inputs, hidden), hidden biases, output weights, output bias) of a
        per-cell array (last axis = cells)."""
        i, h = self.inputs, self.hidden
        a = i * h
        return (w[..., :a].reshape(w.shape[:-1] + (i, h)), w[..., a:a + h],
                w[..., a + h:a + 2 * h], w[..., a + 2 * h])

    def macs(self, samples):
        """Multiply-accumulates of one forward pass over `samples` examples."""
        return samples * (self.inputs * self.hidden + self.hidden)

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ChipModel:
    """The non-ideal forward model of one chip instance (the trainer never sees inside).

    The mismatch (gains, offsets) is drawn once from ``seed``; the read noise comes from its
    own generator, seeded from ``seed`` too, and is drawn fresh in every noisy evaluation, so
    a chip and the sequence of its evaluations are reproducible per seed. Effective weight of
    cell n: ``w_n = gain_n * scale_n * read(W_n) + offset_n``, where ``read`` is the DAC
    (identity, or the centre of the bin of 2**(b - quant) levels).
    """

    def __init__(self, layout, nonideality=Nonideality(), seed=0):
        require(isinstance(layout, NetworkLayout), "layout", layout, "must be a NetworkLayout")
        require(isinstance(nonideality, Nonideality), "nonideality", nonideality,
                "must be a Nonideality")
        require(isinstance(seed, (int, np.integer)) and 0 <= seed < 2**64, "chip seed", seed,
                "must be an integer in [0, 2**64)")
        self.layout, self.nonideality, self.seed = layout, nonideality, int(seed)
        n = layout.cells
        mismatch = np.random.default_rng([self.seed, 0x6D69736D])        # 'mism'
        z_gain, z_offset = mismatch.standard_normal(n), mismatch.standard_normal(n)
        self.gain = np.exp(nonideality.gain * z_gain)
        self.offset = nonideality.offset * layout.full_scales() * z_offset
        self._noise = np.random.default_rng([self.seed, 0x6E6F6973])      # 'nois'
        self._scale = layout.scales()
        q, b = nonideality.quant, layout.weight_bits
        self._bin = 1 << (b - q) if 0 < q < b else 1
        self.macs = 0                     # multiply-accumulates of every evaluation so far

    def read(self, W):
        """The levels the DAC realises for cells W (floats, cell units)."""
        W = np.asarray(W)
        if self._bin == 1:
            return W.astype(np.float64)
        return self._bin * np.floor_divide(W, self._bin) + (self._bin - 1) / 2

    def effective_weights(self, W):
        return self.gain * self._scale * self.read(W) + self.offset

    def logits(self, X, W, noisy=True):
        """Output logits for the rows of X with cells W (read noise unless noisy=False)."""
        X = np.asarray(X, dtype=np.float64)
        require(X.ndim == 2 and X.shape[1] == self.layout.inputs, "X", f"shape {X.shape}",
                f"must be (samples, {self.layout.inputs})")
        W = np.asarray(W)
        require(W.shape == (self.layout.cells,), "weights", f"shape {W.shape}",
                f"must have {self.layout.cells} cells")
        w1, b1, v, c = self.layout.split(self.effective_weights(W))
        ni = self.nonideality
        a = X @ w1 + b1
        if noisy and ni.noise > 0:
            a += ni.noise * self._noise.standard_normal(a.shape)
        h = np.maximum(a, 0.0)
        if ni.saturation > 0:
            h = ni.saturation * np.tanh(h / ni.saturation)
        z = h @ v + c
        if noisy and ni.noise > 0:
            z += ni.noise * self._noise.standard_normal(z.shape)
        self.macs += self.layout.macs(len(X))
        return z

    def loss(self, X, y, W, noisy=True):
        """Cross-entropy summed over the examples, in nats (the likelihood -log p(y | X, W))."""
        return float(cross_entropy(self.logits(X, W, noisy), y))

    def accuracy(self, X, y, W, noisy=True):
        return float(np.mean((self.logits(X, W, noisy) > 0) == (np.asarray(y) > 0)))


def cross_entropy(z, y):
    """Sum of the binary cross-entropies (nats) of logits z for labels y in {0, 1}."""
    z = np.asarray(z, dtype=np.float64)
    return np.sum(np.logaddexp(0.0, z) - np.asarray(y) * z)


# -- the fixed-point acceptance -----------------------------------------------------------------
def loss_register(loss, loss_frac_bits):
    """L_raw = floor(L * 2**loss_frac_bits + 1/2): the loss as the hardware's register holds it."""
    require(isinstance(loss, (int, float, np.floating, np.integer)) and math.isfinite(loss),
            "loss", loss, "must be a finite number (the forward model returned it)")
    raw = math.floor(float(loss) * 2.0**loss_frac_bits + 0.5)
    limit = 1 << (LOSS_BITS - 1)
    require(-limit <= raw < limit, "loss", loss,
            f"is outside the {LOSS_BITS}-bit loss register with {loss_frac_bits} fraction bits")
    return raw


def energy_shift(spec, loss_frac_bits):
    """s of :func:`state_energy`: gain_frac_bits + loss_frac_bits - barrier_frac_bits."""
    return spec.gain_frac_bits + loss_frac_bits - spec.barrier_frac_bits


def state_energy(eta_raw, loss_raw, shift):
    """E = eta * L in energy LSBs: (eta_raw * L_raw + 2**(s-1)) >> s, or exact when s <= 0."""
    x = int(eta_raw) * int(loss_raw)
    if shift <= 0:
        return x << -shift
    return (x + (1 << (shift - 1))) >> shift


def never_barrier(frac_bits):
    """A barrier (LSBs) whose threshold is exactly 0: the switched-off reverse outcome."""
    return ZERO_FROM_U << frac_bits


def accept(u, delta_e, table, frac_bits):
    """Crossing-unit decisions for draws u and energy changes delta_e = E' - E (LSB arrays):
    the proposal is the up outcome with crossing barrier max(0, E' - E) (decision barrier
    E0 = |D|/2), the down outcome is switched off (barrier 34 u, threshold 0). True with
    probability T(max(0, delta_e)) / 2**32. Returns (accepted, inadmissible); inadmissible is
    always False (T+ + T- = T+ <= 2**32)."""
    u = np.asarray(u)
    b_up = np.maximum(np.asarray(delta_e, dtype=np.int64), 0)
    b_down = np.full(b_up.shape, never_barrier(frac_bits), dtype=np.int64)
    up, down, inadmissible = decide(u, b_up, b_down, table)
    if down.any() or inadmissible.any():
        raise IdentityError("acceptance: the switched-off reverse outcome fired")
    return up, inadmissible


def acceptance_probability(delta_e, table):
    """The exact probability of :func:`accept`: T(max(0, delta_e)) / 2**32."""
    last = len(table) - 2
    b = np.minimum(np.maximum(np.asarray(delta_e, dtype=np.int64), 0), last)
    return table[b + 1] / ONE


# -- the trainer --------------------------------------------------------------------------------
@dataclass
class MHResult:
    """What a run leaves: the posterior mean and the cells deployed from it, the last chain
    state, the counters, and statistics."""

    mean: np.ndarray                   # posterior mean (floats, cell units)
    deployed: np.ndarray               # mean rounded half up to the ladder (ints)
    final: np.ndarray                  # last state of the chain (ints)
    counters: Counters
    stats: dict = field(default_factory=dict)
    history: list = field(default_factory=list)     # (step, loss register as float, eta u)


class ModelArray:
    """The array's part of an MH chain on the golden model: proposals and decisions, counted.

    `propose` runs one step of zero tilt at the barrier E0(k) (the cells' weights become the
    proposal, as on the hardware); `decide` takes the energy difference E' - E of the current
    proposal, decides it with the acceptance generator and the crossing rule, and on a
    rejection reverts it. The hardware's version is ``limemu.mh_hardware.HardwareArray``; the
    trainer drives either the same way, so their chains are the same by construction.
    """

    def __init__(self, spec, weights):
        self.spec = spec
        self.table = threshold_table(spec.barrier_frac_bits, spec.mantissa_bits)
        self.order = update_order(spec.cells, spec.lanes, "natural")
        self.streams = LaneStreams(spec.seed, spec.lanes)
        self.accept_lane = LaneGenerator(spec.seed, spec.lanes)
        self.counters = Counters(spec)
        self.W = np.array(weights, dtype=np.int64)
        self.step = 0
        self._block, self._block_start = None, 0
        self._moved = np.zeros(0, dtype=np.int64)

    def proposals(self, count):
        """Proposed moves of the next `count` steps from the lane generators: an int8 array
        (count, cells) of +1 (up), -1 (down), 0, and the inadmissible flags."""
        spec, order = self.spec, self.order
        e0 = spec.barrier.values_at(np.arange(self.step, self.step + count))
        draws = self.streams.take(count * order.groups)
        draws = draws.reshape(spec.lanes, count, order.groups).transpose(1, 2, 0)
        draws = draws.reshape(count, -1)[:, order.slot]                # (count, positions)
        b = np.repeat(e0, spec.cells).reshape(count, spec.cells)
        up, down, inadmissible = decide(draws.ravel(), b.ravel(), b.ravel(), self.table)
        moves = np.zeros(count * spec.cells, dtype=np.int8)
        moves[up] = 1
        moves[down] = -1
        cells = np.empty_like(moves.reshape(count, -1))
        cells[:, order.sequence] = moves.reshape(count, -1)             # position -> cell
        return cells, inadmissible.reshape(count, -1).sum(axis=1)

    def propose(self, end):
        """One proposal step (the run ends at step `end`: draws are made in blocks up to it).
        Returns the number of cells it moved; ``self.W`` is the proposal."""
        spec, c = self.spec, self.counters
        k = self.step - self._block_start
        if self._block is None or k >= len(self._block[0]):
            count = min(BLOCK_STEPS, end - self.step)
            self._block, self._block_start, k = self.proposals(count), self.step, 0
        row, inadmissible = self._block[0][k], int(self._block[1][k])
        moved = np.flatnonzero(row)
        dw = row[moved].astype(np.int64) * spec.delta
        target = self.W[moved] + dw
        ok = (target >= spec.w_lo) & (target <= spec.w_hi)
        self._moved, self._dw = moved[ok], dw[ok]
        self.W[self._moved] += self._dw
        e0 = spec.barrier.values_at([self.step, self.step + 1])
        c.add("inadmissible", inadmissible)
        c.add("blocked_moves", int(moved.size - self._moved.size))
        c.add("up_moves", int(np.count_nonzero(self._dw > 0)))
        c.add("down_moves", int(np.count_nonzero(self._dw < 0)))
        c.add("barrier_work", spec.cells * max(0, int(e0[1] - e0[0])))
        c.add("evaluations", spec.cells)
        c.add("steps", 1)
        self.step += 1
        return int(self._moved.size)

    def decide(self, delta_e):
        """The decision on the proposal: accepted with probability T(max(0, delta_e)) / 2**32
        (:func:`accept`); a rejected proposal is reverted. Returns whether it was accepted."""
        c = self.counters
        up, _ = accept(np.array([self.accept_lane.next_draw()], dtype=np.int64),
                       np.array([delta_e], dtype=np.int64), self.table,
                       self.spec.barrier_frac_bits)
        c.add("proposals", 1)
        if up[0]:
            c.add("acceptances", 1)
            c.add("heat_net", -delta_e)
            c.add("heat_abs", abs(delta_e))
        else:
            self.W[self._moved] -= self._dw
            c.add("reverted_moves", self._moved.size)
        c.check_overflow()
        return bool(up[0])

    def weights(self):
        return self.W.copy()

    def close(self):
        pass


class ReferenceArray(ModelArray):
    """:class:`ModelArray` with its proposals from the plain loop of the hardware: every
    group of the natural order, every lane drawing from its own generator (idle lanes too),
    one crossing decision per cell (``decide_one``). Slow; the readable specification of the
    proposals, against which the vectorised ones are tested."""

    def __init__(self, spec, weights):
        super().__init__(spec, weights)
        self.lanes = [LaneGenerator(spec.seed, lane) for lane in range(spec.lanes)]

    def proposals(self, count):
        spec = self.spec
        groups = -(-spec.cells // spec.lanes)
        moves = np.zeros((count, spec.cells), dtype=np.int8)
        inadmissible = np.zeros(count, dtype=np.int64)
        for k in range(count):
            e0 = int(spec.barrier.values_at([self.step + k])[0])
            for group in range(groups):
                for lane, generator in enumerate(self.lanes):
                    u, cell = generator.next_draw(), group * spec.lanes + lane
                    if cell < spec.cells:
                        outcome, bad = decide_one(u, e0, e0, spec.barrier_frac_bits,
                                                  spec.mantissa_bits)
                        moves[k, cell] = {"up": 1, "down": -1, "stay": 0}[outcome]
                        inadmissible[k] += bad
        return moves, inadmissible


class MHTrainer:
    """Metropolis-Hastings on the cells of an array (see the module docstring).

    spec: a :class:`Spec` (cells, weight_bits, lanes, seed, barrier schedule = proposal
    barrier E0, gain schedule = eta in u per loss unit, formats). loss_fn(W) -> (loss, macs):
    the forward model, W an int64 array of the cells (a copy). weights: the initial cells.
    burn_in: steps before averaging starts. average: 'chain' (time average of the chain's
    states after burn-in, every step, the usual MCMC estimate of the posterior mean) or
    'accepted' (average of the states accepted after burn-in, each once). remeasure: evaluate
    the current state's loss again before every decision (with read noise, a chain that keeps
    its luckiest measurement otherwise sticks). record_every: keep (step, loss, eta) every that
    many steps in ``history``; trace: keep (step, E, E', accepted) of every decided proposal in
    ``trace`` and the cells after every step in ``states`` (cross-checks). array: who proposes and decides (default: the golden model's
    :class:`ModelArray`; ``limemu.mh_hardware.HardwareArray`` for the RTL and boards), built
    by ``array(spec, weights)``.
    """

    def __init__(self, spec, loss_fn, weights, burn_in=0, loss_frac_bits=8, average="chain",
                 record_every=0, trace=False, remeasure=False, array=ModelArray):
        require(isinstance(spec, Spec), "spec", spec, "must be a Spec")
        require(not spec.spins, "weight_bits", spec.weight_bits,
                "must be >= 2 (MH moves multi-level cells)")
        require(isinstance(loss_frac_bits, int) and 0 <= loss_frac_bits <= 16,
                "loss_frac_bits", loss_frac_bits, "must be an integer in [0, 16]")
        require(average in AVERAGES, "average", average, f"must be one of {AVERAGES}")
        require(isinstance(burn_in, (int, np.integer)) and burn_in >= 0, "burn_in", burn_in,
                "must be an integer >= 0")
        w = np.asarray(weights)
        require(w.shape == (spec.cells,), "weights", f"shape {w.shape}",
                f"must have {spec.cells} entries")
        w = w.astype(np.int64)
        bad = np.flatnonzero((w < spec.w_lo) | (w > spec.w_hi))
        require(bad.size == 0, f"weights[{bad[0] if bad.size else 0}]",
                int(w[bad[0]]) if bad.size else 0,
                f"must be in the ladder [{spec.w_lo}, {spec.w_hi}]")
        self.spec, self.loss_fn = spec, loss_fn
        self.burn_in, self.average = int(burn_in), average
        self.loss_frac_bits = loss_frac_bits
        self.shift = energy_shift(spec, loss_frac_bits)
        self.record_every = int(record_every)
        self.remeasure = bool(remeasure)
        self.W = w.copy()
        self.W0 = w.copy()
        self.step = 0
        self.stats = dict(proposals=0, empty=0, accepted=0, proposed_moves=0,
                          reverted_moves=0, forward_evaluations=0, forward_macs=0,
                          averaged_steps=0, averaged_accepted=0, anneal_work=0,
                          remeasure_work=0)
        self.loss_raw = self._evaluate(self.W)
        self.loss_raw0 = self.loss_raw
        self.eta0 = int(spec.gain.values_at([0])[0])
        self._sum_chain = np.zeros(spec.cells, dtype=np.int64)
        self._sum_accepted = np.zeros(spec.cells, dtype=np.int64)
        self.history = []
        self.trace = [] if trace else None
        self.states = [] if trace else None       # the cells after every step (with trace)
        self.array = array(spec, w)

    @property
    def counters(self):
        return self.array.counters

    def _evaluate(self, W):
        loss, macs = self.loss_fn(W.copy())
        self.stats["forward_evaluations"] += 1
        self.stats["forward_macs"] += int(macs)
        return loss_register(loss, self.loss_frac_bits)

    def energy(self, eta_raw, loss_raw):
        return state_energy(eta_raw, loss_raw, self.shift)

    def run(self, steps, progress=None):
        """Run `steps` MH steps; returns an :class:`MHResult`. Checks the first law."""
        require(isinstance(steps, (int, np.integer)) and steps >= 1, "steps", steps,
                "must be an integer >= 1")
        spec = self.spec
        end = self.step + int(steps)
        low = int(spec.barrier.values_at(np.arange(self.step, end + 1)).min())
        require(low >= 1 << spec.barrier_frac_bits, "barrier", f"{low / 2**spec.barrier_frac_bits}"
                " u", "the proposal barrier must stay >= 1 u (p+ + p- <= 1)")
        eta_all = spec.gain.values_at(np.arange(self.step, end + 1))
        first = self.step
        while self.step < end:
            i = self.step - first
            self._step(end, int(eta_all[i]), int(eta_all[i + 1]))
            if progress is not None and (self.step % BLOCK_STEPS == 0 or self.step == end):
                progress(self.step, end, self)
        self.counters.check_overflow()
        self.check_identities()
        return self.result()

    def _step(self, end, eta, eta_next):
        """One MH step: the array proposes; a proposal that moved cells is evaluated and
        decided by the array; the gain moves on (its work, on the kept state, is the host's)."""
        stats = self.stats
        k = self.step
        moved = self.array.propose(end)
        accepted = False
        if moved:
            proposal = self.array.weights()
            if self.remeasure:
                fresh = self._evaluate(self.W)
                stats["remeasure_work"] += self.energy(eta, fresh) - self.energy(eta, self.loss_raw)
                self.loss_raw = fresh
            loss_new = self._evaluate(proposal)
            e_old, e_new = self.energy(eta, self.loss_raw), self.energy(eta, loss_new)
            accepted = self.array.decide(e_new - e_old)
            if self.trace is not None:
                self.trace.append((k, e_old, e_new, accepted))
            stats["proposals"] += 1
            stats["proposed_moves"] += moved
            if accepted:
                self.W, self.loss_raw = proposal, loss_new
                stats["accepted"] += 1
            else:
                stats["reverted_moves"] += moved
        else:
            stats["empty"] += 1
        stats["anneal_work"] += self.energy(eta_next, self.loss_raw) - self.energy(eta,
                                                                                   self.loss_raw)
        self.step += 1
        if self.states is not None:
            self.states.append(self.W.copy())
        if self.step > self.burn_in:
            self._sum_chain += self.W
            stats["averaged_steps"] += 1
            if accepted:
                self._sum_accepted += self.W
                stats["averaged_accepted"] += 1
        if self.record_every and self.step % self.record_every == 0:
            self.history.append((self.step, self.loss_raw / 2**self.loss_frac_bits,
                                 eta_next / 2**self.spec.gain_frac_bits))

    def check_identities(self):
        """First law (exact): heat_net = E(eta0, L0) - E(etaK, LK) + anneal work + the work of
        remeasurements (both the host's); the counters' totals agree with the chain's."""
        c, stats = self.counters.exact, self.stats
        eta_now = int(self.spec.gain.values_at([self.step])[0])
        expected = (self.energy(self.eta0, self.loss_raw0) - self.energy(eta_now, self.loss_raw)
                    + stats["anneal_work"] + stats["remeasure_work"])
        failures = []
        if c["heat_net"] != expected:
            failures.append(f"first law: heat_net {c['heat_net']} != E(eta0, L0) - E(etaK, LK)"
                            f" + anneal work + remeasure work = {expected}")
        moves = c["up_moves"] + c["down_moves"]
        if c["evaluations"] != c["steps"] * self.spec.cells or \
                moves + c["blocked_moves"] > c["evaluations"] or \
                moves != stats["proposed_moves"] or \
                c["reverted_moves"] != stats["reverted_moves"] or \
                c["proposals"] != stats["proposals"] or c["acceptances"] != stats["accepted"]:
            failures.append(f"counter totals inconsistent: {c}, {stats}")
        if not np.array_equal(self.array.weights(), self.W):
            failures.append("the array's weights differ from the chain's state")
        if failures:
            raise IdentityError(f"after step {self.step}: " + "; ".join(failures)
                                + f" [{self.spec!r}]")

    def result(self):
        spec = self.spec
        if self.average == "accepted":
            total, n = self._sum_accepted, self.stats["averaged_accepted"]
        else:
            total, n = self._sum_chain, self.stats["averaged_steps"]
        if n == 0:                                 # nothing to average: the current state
            total, n = self.W.copy(), 1
        mean = total / n
        deployed = np.clip((2 * total + n) // (2 * n), spec.w_lo, spec.w_hi)   # half up
        stats = dict(self.stats)
        stats["acceptance_rate"] = stats["accepted"] / max(stats["proposals"], 1)
        stats["loss"] = self.loss_raw / 2**self.loss_frac_bits
        stats["average"] = self.average
        stats["averaged_samples"] = n
        return MHResult(mean=mean, deployed=deployed.astype(np.int64), final=self.W.copy(),
                        counters=self.counters, stats=stats, history=list(self.history))


def proposal_barrier_u(cells, moves):
    """E0 in u that proposes `moves` cells per step on average: log2(2 cells / moves)."""
    require(isinstance(moves, (int, float)) and math.isfinite(moves) and 0 < moves <= cells,
            "moves", moves, f"must be in (0, cells = {cells}]")
    return math.log2(2 * cells / moves)
