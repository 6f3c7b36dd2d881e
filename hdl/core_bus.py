"""What both array cores (hdl/array_core.py, hdl/compact_core.py) build the same way from the
register map: the host's registers, the schedule units' configuration, the registers the host
can read, the address decode and the register writes. Each core adds its own memories and read
path; the control and status logic is hdl/core_control.py's."""

from amaranth import Cat, Const, Mux, Signal, Value, signed, unsigned

from .address_decode import region_hit, region_offset
from .regmap import MAGIC, VERSION, WORD_BITS, words


def registers(rmap):
    """{name: Signal} of every read-write register of the map: what the host sets."""
    out = {}
    for region in rmap:
        if not region.is_memory and region.access == "rw":
            shape = signed(region.width) if region.signed else unsigned(region.width)
            out[region.name] = Signal(shape, name=f"reg_{region.name}")
    return out


def configure_schedules(m, regs, units):
    """Every ``cfg_*`` port of the schedule units ({"barrier": unit, "gain": unit}) from the
    register of the same name."""
    for unit_name, unit in units.items():
        for port_name in unit.signature.members:
            if port_name.startswith("cfg_"):
                m.d.comb += getattr(unit, port_name).eq(regs[f"{unit_name}_{port_name[4:]}"])


def readable_registers(regs, status, barrier, gain, overflow, cell_overflow=None):
    """{name: value} of the registers a read answers from logic (the counters' come from each
    core's own counters); `status` is CoreControl.status."""
    out = dict(regs)
    if cell_overflow is not None:
        out["cell_overflow"] = cell_overflow
    out.update(magic=Const(MAGIC, 32), version=Const(VERSION, 32),
               status=status.as_value(), step=barrier.step,
               barrier_now=barrier.value, gain_now=gain.value, overflow=overflow)
    return out


def decode(rmap, address):
    """(hit, word_of, index_of, any_hit) for a bus address: per region name, whether the
    address is in it, the word of the entry or register, and a memory's entry index."""
    hit, word_of, index_of = {}, {}, {}
    for region in rmap:
        offset = region_offset(region, address)
        hit[region.name] = region_hit(region, address)
        if region.is_memory:
            stride_bits = (region.stride - 1).bit_length()
            word_of[region.name] = offset[:stride_bits] if stride_bits else Const(0, 1)
            index_of[region.name] = offset[stride_bits:]
        else:
            word_of[region.name] = offset[:max(1, (region.size - 1).bit_length())]
    return hit, word_of, index_of, Cat(*hit.values()).any()


def register_writes(m, rmap, bus, decoded, regs, ctl, memory_write):
    """A bus write: the control strobes, the registers' words, refusals (read-only or unknown
    address, a register written during a run) through CoreControl `ctl`; `memory_write(region,
    word, index)` handles a memory's word."""
    hit, word_of, index_of, any_hit = decoded
    with m.If(bus["we"]):
        for region in rmap:
            with m.If(hit[region.name]):
                if region.name == "control":
                    m.d.comb += ctl.control.eq(bus["wdata"])
                elif region.access == "ro":
                    m.d.comb += ctl.refuse_address.eq(1)
                elif not region.is_memory:
                    with m.If(ctl.status.busy):
                        m.d.comb += ctl.refuse_busy.eq(1)
                    with m.Else():
                        reg = regs[region.name]
                        for w in range(words(region.width)):
                            with m.If(word_of[region.name] == w):
                                top = min(region.width, WORD_BITS * (w + 1))
                                m.d.sync += reg[WORD_BITS * w:top].eq(bus["wdata"])
                else:
                    memory_write(region, word_of[region.name], index_of[region.name])
        with m.If(~any_hit):
            m.d.comb += ctl.refuse_address.eq(1)


def accept_memory_access(m, ctl, allowed):
    """Whether a memory access goes ahead: `allowed` (direction, index) and no run in progress.
    A refused one sets ``error_busy_write`` during a run, ``error_address`` otherwise."""
    allowed = Value.cast(allowed)                     # (a Python bool for a region's direction)
    with m.If(~allowed | ctl.status.busy):
        with m.If(ctl.status.busy):
            m.d.comb += ctl.refuse_busy.eq(1)
        with m.Else():
            m.d.comb += ctl.refuse_address.eq(1)
    return allowed & ~ctl.status.busy


def memory_write(m, ctl, staging, wdata, region, word, commit):
    """A word written into a memory region: refused during a run; a lower word of a wide entry
    waits in `staging`; the last word commits the whole entry (``commit(entry)``, its words
    least significant first); a word past the entry's words is refused."""
    last = words(region.width) - 1
    with m.If(ctl.status.busy):
        m.d.comb += ctl.refuse_busy.eq(1)
    with m.Elif(word < last):
        for w in range(last):
            with m.If(word == w):
                m.d.sync += staging[WORD_BITS * w:WORD_BITS * (w + 1)].eq(wdata)
    with m.Elif(word == last):
        commit(Cat(staging[:WORD_BITS * last], wdata) if last else wdata)
    with m.Else():
        m.d.comb += ctl.refuse_address.eq(1)


def step_end_counts(m, spec, counters, regs, e0, eta, barrier, gain, external=None):
    """The counts of a step's end, in the cycle the schedules hold the next step's values:
    steps + 1, the barrier's work (its rise over the current `e0`, times the run's cells) and
    the annealing work (the gain's change over `eta` times the loss register; none while
    `external`, a signal, is set: external tilts have no loss register)."""
    rise = Signal(signed(spec.barrier_bits + 1), name="barrier_rise")
    d_eta = Signal(signed(spec.gain_bits + 1), name="gain_change")
    work = (d_eta * regs["loss2"]) << (spec.tilt_shift + 1)
    m.d.comb += [rise.eq(barrier.value - e0), d_eta.eq(gain.value - eta),
                 counters.inc_steps.eq(1),
                 counters.inc_barrier_work.eq(Mux(rise > 0, rise * regs["cells"], 0)),
                 counters.inc_anneal_work.eq(work if external is None else Mux(external, 0, work))]
