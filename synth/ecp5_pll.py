"""The ``sync`` clock domain of an ECP5 board from its oscillator through the EHXPLLL.

:func:`pll_dividers` finds the dividers as Project Trellis' ``ecppll`` does (feedback from
CLKOP): f_out = f_in * CLKFB_DIV / CLKI_DIV with the phase detector at f_in / CLKI_DIV >=
3.125 MHz and the VCO at f_out * CLKOP_DIV in [400, 800] MHz; it refuses a frequency it cannot
make exactly. :class:`PllDomain` drives the ``sync`` domain (its parent defines it) from the
PLL, holds the domain in reset until the PLL has locked (a two-flip-flop synchroniser on the
output clock) and constrains the output clock for nextpnr.
"""

from amaranth import ClockSignal, Elaboratable, Module, Signal
from amaranth.hdl import Instance
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer
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

    def __init__(self, in_hz, out_hz):
        self.in_hz, self.out_hz = in_hz, out_hz
        self.dividers = pll_dividers(in_hz, out_hz)

    def elaborate(self, platform):
        m = Module()
        clki_div, clkfb_div, clkop_div = self.dividers
        m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk,
                                                                       dir="-"))
        clk_out, locked = Signal(), Signal()
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
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
        platform.add_clock_constraint(clk_out, self.out_hz)
        return m
