"""The address rule (hdl/address_decode.py's AddressRule) equals `RegisterMap.refusal` for
every address, direction and run state, proven (a combinational check: induction at depth 1).

The specification is built from `RegisterMap.refusal` itself: the map's addresses (and the
burst addresses past its end) as runs of equal verdict, compared as ranges: a structure
unlike the rule's aligned-block decode."""

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Module, Signal

from limemu.hdl.address_decode import AddressRule
from limemu.hdl.regmap import Geometry, RegisterMap
from limemu.model.spec import Spec

from .runner import Property

MAPS = {
    "dense": lambda: RegisterMap(Spec(cells=8, lanes=2, weight_bits=4),
                                 Geometry(lanes=2, groups=4, q_storage="dense", q_capacity=1,
                                          table_depth=256)),
    # lane-limited entries (lane 3 of 4 does not exist), sparse Q, per-cell counters
    "sparse3": lambda: RegisterMap(Spec(cells=9, lanes=3, weight_bits=2, cell_counter_bits=8,
                                        q_storage="sparse"),
                                   Geometry(lanes=3, groups=3, q_storage="sparse",
                                            q_capacity=20, table_depth=256)),
}
VERDICTS = {None: (0, 0), "address": (1, 0), "busy": (0, 1)}     # (bad_address, busy)


def verdict_runs(rmap, write, running):
    """[(first, last, (bad_address, busy))] over every address the rule sees
    (address_bits + 1 bits), maximal runs of one verdict."""
    runs = []
    for address in range(2 << rmap.address_bits):
        verdict = VERDICTS[rmap.refusal(address, write=write, running=running)]
        if runs and runs[-1][2] == verdict:
            runs[-1][1] = address
        else:
            runs.append([address, address, verdict])
    return runs


class AdmitsOneForbidden(AddressRule):
    """Mutation: admits a write to the first read-only register."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        target = next(r for r in self.rmap if r.access == "ro" and not r.is_memory).base
        with m.If((self.address == target) & self.write & ~self.beyond):
            m.d.comb += [self.bad_address.eq(0), self.busy.eq(0)]
        return m


def harness(map_name, mutant):
    rmap = MAPS[map_name]()
    m = Module()
    m.submodules.rule = rule = (AdmitsOneForbidden if mutant else AddressRule)(rmap)
    for port in (rule.address, rule.beyond, rule.write, rule.running):
        m.d.comb += port.eq(AnySeq(len(port)))
    bad, busy = Signal(), Signal()
    with m.If(rule.beyond):
        m.d.comb += bad.eq(1)
    with m.Else():
        for write in (0, 1):
            for running in (0, 1):
                with m.If((rule.write == write) & (rule.running == running)):
                    for first, last, (v_bad, v_busy) in verdict_runs(rmap, write, running):
                        with m.If((rule.address >= first) & (rule.address <= last)):
                            m.d.comb += [bad.eq(v_bad), busy.eq(v_busy)]
    m.d.comb += [Assert(rule.bad_address == bad), Assert(rule.busy == busy)]
    return m


PROPERTIES = [
    Property(f"address_rule.{name}", lambda mutant, name=name: harness(name, mutant),
             "prove", 1, f"AddressRule == RegisterMap.refusal, every address ({name} map)",
             mutant="admits a write to a read-only register")
    for name in MAPS
]
