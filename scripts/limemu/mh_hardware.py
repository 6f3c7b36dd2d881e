"""Metropolis-Hastings with the array core in the loop: the RTL (Verilator), the virtual board
or a board proposes and decides, the host evaluates the chip and keeps the chain.

`HardwareArray` is the hardware's side of ``limemu.model.mh.MHTrainer`` (the model's is
``ModelArray``): the trainer drives both the same way, so a chain on the RTL is the model's chain
by construction, and every counter can be compared. Per MH step it costs the host:

1. a one-step run with zero external tilts at the barrier E0(k) (the proposal; the cells'
   weights become the proposal) and a read of every weight;
2. when a cell moved: ``mh_delta`` = E' - E written and the ``accept`` command; the core
   decides with its acceptance generator and crossing unit, and reverts a rejected proposal
   itself; the status register's ``accepted`` flag says which.
"""

import numpy as np

from limemu.hdl import protocol
from limemu.hdl.lane_rng import seed_word
from limemu.hdl.regmap import STATUS, from_words, has_mh, mh_delta_bits
from limemu.model.counters import Counters
from limemu.model.errors import ConfigError, IdentityError, require
from limemu.model.order import update_order

from .hardware import open_device
from .host import (
    bank_indices,
    check_schedules,
    control_write,
    decode_state,
    entry_writes,
    geometry_for,
    load_sequence,
    register_writes,
    run_plan,
    state_addresses,
    tilt_plan,
)


class HardwareArray:
    """``HardwareArray(spec, weights, backend=..., core=..., **device options)``: an MH chain's
    array on `backend` ("verilator", "vboard" or "board"; the options are open_device's).
    Methods: propose(end) -> cells moved, decide(delta_e) -> accepted, weights(),
    counters (read from the core), close(); ``round_trips`` counts the host's calls of the device (each a round trip)."""

    def __init__(self, spec, weights, *, backend="verilator", core="pipelined", **options):
        require(spec.tilt == "external", "tilt", spec.tilt, "must be 'external' for an MH run "
                "(the proposal is a step with zero external tilts)")
        self.spec = spec
        self.order = update_order(spec.cells, spec.lanes, "natural")
        geometry = geometry_for(spec, self.order, core=core)
        require(has_mh(spec, geometry), "core", core, "has no MH commands for this array "
                "(they need the pipelined core and cells of >= 2 bits)")
        check_schedules(spec, geometry)
        self.device = open_device(backend, spec, geometry, **options)
        self.rmap = self.device.rmap
        if "mh_delta" not in self.rmap.regions:            # a board's own build
            self.close()
            raise ConfigError(f"the {backend}'s build ({self.rmap.geometry.core} core, "
                              f"weight_bits = {self.rmap.spec.weight_bits}) has no MH commands: "
                              "build one with cells of >= 2 bits on the pipelined or compact core")
        self.W = np.array(weights, dtype=np.int64)
        self.cycles = 0
        self.round_trips = 0
        self.decisions = 0
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        weight = self.rmap["weight"]
        self._weight_addresses = [weight.address(i) for i in
                                  bank_indices(self.rmap, self.order).tolist()]
        self._proposal = None

    def _load(self):
        """The run's load (external tilts), the acceptance generator's seed, zero tilts."""
        spec, rmap = self.spec, self.rmap
        extra = entry_writes(rmap, "seed", spec.lanes, seed_word(spec.seed, spec.lanes))
        extra += tilt_plan(rmap, self.order, np.zeros(spec.cells, dtype=np.int64))
        for index, (kind, words) in enumerate(load_sequence(rmap, None, self.order, self.W,
                                                            external=True)):
            words = words + extra if index == 0 else words
            if kind == "run":
                self.device.run(words)
            else:
                self.device.write(words)

    def propose(self, end):
        """One step of zero tilt; returns how many cells it moved (their weights are read)."""
        self.cycles += self.device.run(run_plan(self.rmap, 1))
        new = self._read_weights()
        moved = np.flatnonzero(new != self.W)
        if np.any(np.abs(new[moved] - self.W[moved]) != self.spec.delta):
            raise IdentityError(f"{self.rmap!r}: a proposal moved a cell by more than one "
                                "step of the ladder")
        self._proposal = (self.W, new)
        self.W = new
        self.round_trips += 2
        return int(moved.size)

    def decide(self, delta_e):
        """`delta_e` = E' - E into ``mh_delta``, then ``accept``; the core reverts a rejected
        proposal. Returns whether it was accepted."""
        bits = mh_delta_bits(self.spec)
        if not -(1 << (bits - 1)) <= delta_e < 1 << (bits - 1):
            raise ConfigError(f"mh_delta = {delta_e}: the energy difference of a proposal must "
                              f"fit the core's {bits}-bit signed register (lower the gain)")
        self.cycles += self.device.run(register_writes(self.rmap, "mh_delta", delta_e)
                                       + control_write(self.rmap, "accept"))
        status = self.device.read([self.rmap["status"].base])[0]
        errors = [name for name, bit in STATUS.items()
                  if name.startswith("error_") and status >> bit & 1]
        if errors:
            raise IdentityError(f"the core refused the decision ({', '.join(errors)})")
        accepted = bool(status >> STATUS["accepted"] & 1)
        if not accepted:
            self.W = self._proposal[0]
        self._proposal = None
        self.round_trips += 2
        self.decisions += 1
        return accepted

    def link_estimate(self, steps, baud=1_000_000):
        """What this run's steps cost over the serial link (hdl/protocol.py frames, as
        limemu.link.BoardDevice sends them: a run is its writes, one status poll and an INFO
        for the cycle count; 10 bits a byte): requests and bytes per step, and the steps per
        second `baud` allows, not counting the link's latency."""
        decided = self.decisions
        propose = np.add.reduce([_write_cost(run_plan(self.rmap, 1)), _poll_cost(),
                                 _read_cost(self._weight_addresses)])
        decide = np.add.reduce([_write_cost(register_writes(self.rmap, "mh_delta", 0)
                                            + control_write(self.rmap, "accept")),
                                _poll_cost(), _read_cost([self.rmap["status"].base])])
        requests = int(propose[0]) + int(decide[0]) * decided / max(steps, 1)
        total = int(propose[1]) + int(decide[1]) * decided / max(steps, 1)
        return {"host_calls_per_step": self.round_trips / max(steps, 1),
                "link_requests_per_step": requests, "link_bytes_per_step": total,
                "link_baud": baud, "link_steps_per_s": baud / 10 / total}

    def _read_weights(self):
        weight = self.rmap["weight"]
        words = self.device.read(self._weight_addresses)
        return np.array([from_words([w], weight.width, True) for w in words], dtype=np.int64)

    def weights(self):
        return self.W.copy()

    def state(self):
        """The core's state as decode_state reads it: weights, counters, flags, step."""
        words = self.device.read(state_addresses(self.rmap, self.order, field=False))
        return decode_state(self.rmap, self.order, words, field=False)

    @property
    def counters(self):
        """The core's counters (hardware values, which are exact while no flag is set)."""
        state = self.state()
        counters = Counters(self.spec)
        counters.exact.update(state["counters"])
        counters.overflow.update(state["overflow"])
        return counters

    def close(self):
        self.device.close()
        board = getattr(self.device, "board", None)
        if board is not None:
            board.close()


# -- frames on the serial link (requests, bytes) -------------------------------------------------
FRAME = protocol.REQUEST_HEADER + protocol.CRC_BYTES + protocol.RESPONSE_HEADER + protocol.CRC_BYTES


def _write_cost(pairs):
    frames = protocol.bursts(pairs)
    return len(frames), sum(FRAME + len(protocol.write_payload(a, w)) for a, w in frames)


def _read_cost(addresses):
    runs = protocol.bursts([(a, 0) for a in addresses])
    return len(runs), sum(FRAME + protocol.READ_LENGTH + protocol.WORD_BYTES * len(w)
                          for _, w in runs)


def _poll_cost():
    """One status read and the INFO that reads the run's cycles."""
    status = _read_cost([0])
    return status[0] + 1, status[1] + FRAME + protocol.WORD_BYTES * len(protocol.INFO_FIELDS)
