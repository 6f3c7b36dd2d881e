"""FPGA builds of the board top (hdl/board_top.py): iCEBreaker (iCE40UP5K) and ULX3S (ECP5-85F).

See synth/README.md; the boards and the build flow are in :mod:`limemu.synth.boards`.
"""
