"""The names of the backends a run can use (no imports: the RTL's are loaded when used)."""

HARDWARE = ("verilator", "vboard", "board")     # the backends that run the RTL
BACKENDS = ("model", "reference") + HARDWARE
