"""The ``sync`` clock domain of an ECP5 board from its oscillator through the EHXPLLL.

:func:`pll_dividers` finds the dividers as Project Trellis' ``ecppll`` does (feedback from
CLKOP): f_out = f_in * CLKFB_DIV / CLKI_DIV with the phase detector at f_in / CLKI_DIV >=
3.125 MHz and the VCO at f_out * CLKOP_DIV in [400, 800] MHz; it refuses a frequency it cannot
make exactly. :class:`PllDomain` drives the ``sync`` domain (its parent defines it) from the
PLL, holds the domain in reset until the PLL has locked (the global set/reset, released by a
two-flip-flop synchroniser on the output clock; the parent makes the domain reset-less) and
constrains the output clock for nextpnr (at ``route_at_hz`` when that is lower: see
synth/boards.py's ``Board.route_at_hz``).
"""

from amaranth import ClockSignal, Elaboratable, Module, Signal
from amaranth.hdl import Instance
from amaranth.lib import io
from limemu.model.errors import require

PFD_MIN_HZ = 3_125_000
VCO_HZ = (400_000_000, 800_000_000)


def pll_dividers(in_hz, out_hz):
    """(CLKI_DIV, CLKFB_DIV, CLKOP_DIV) that make out_hz exactly from in_hz, the VCO nearest
    600 MHz; ConfigError when none does."""
    best = None
    for clki in range(1, 129):
        if in_hz / clki < PFD_MIN_HZ:
            break
        for clkfb in range(1, 81):
            if in_hz * clkfb != out_hz * clki:
                continue
            for clkop in range(1, 129):
                vco = out_hz * clkop
                if VCO_HZ[0] <= vco <= VCO_HZ[1]:
                    score = abs(vco - 600_000_000)
                    if best is None or score < best[0]:
                        best = (score, (clki, clkfb, clkop))
    require(best is not None, "clock_hz", out_hz,
            f"the ECP5 PLL cannot make it exactly from {in_hz} Hz (f_in * CLKFB_DIV / CLKI_DIV "
            "with a VCO of 400 to 800 MHz)")
    return best[1]


class PllDomain(Elaboratable):
    """Drives the ``sync`` domain (the parent defines it: ``m.domains.sync``) at ``out_hz`` from
    the platform's default clock (at ``in_hz``) through an EHXPLLL; reset until the PLL reports
    lock."""

    def __init__(self, in_hz, out_hz, *, route_at_hz=0):
        self.in_hz, self.out_hz = in_hz, out_hz
        self.route_at_hz = route_at_hz or out_hz
        self.dividers = pll_dividers(in_hz, out_hz)

    def elaborate(self, platform):
        m = Module()
        clki_div, clkfb_div, clkop_div = self.dividers
        m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk,
                                                                       dir="-"))
        # kept by name: yosys drops the names of a net's aliases, and nextpnr then ignores the
        # clock constraint on it (and derives one at out_hz from the input's)
        clk_out, locked = Signal(name="pll_clk", attrs={"keep": 1}), Signal(name="pll_locked")
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.in_hz / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.out_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=clkop_div,
            p_CLKOP_CPHASE=(clkop_div - 1) // 2, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=clk_in.i, i_CLKFB=clk_out, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clk_out)
        # reset through the global set/reset network, as amaranth's own ECP5 domain does: a
        # reset net of ordinary routing to every flip-flop of the array congests the router
        # (the 8-lane array took ten times as long to route), so the domain is reset-less and
        # SGSR returns every flip-flop to its initial value until the PLL has locked (two
        # flip-flops outside GSR synchronise the lock to the output clock)
        lock_sync, release = Signal(name="pll_lock_sync"), Signal(name="pll_release")
        m.submodules.lock_ff0 = Instance("FD1S3AX", p_GSR="DISABLED", i_CK=clk_out,
                                         i_D=locked, o_Q=lock_sync)
        m.submodules.lock_ff1 = Instance("FD1S3AX", p_GSR="DISABLED", i_CK=clk_out,
                                         i_D=lock_sync, o_Q=release)
        m.submodules.gsr = Instance("SGSR", i_CLK=clk_out, i_GSR=release)
        platform.add_clock_constraint(clk_out, self.route_at_hz)
        return m
