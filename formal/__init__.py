"""Formal proofs of the RTL (SymbiYosys): one harness module per component family, run by
`formal.runner` (``python -m formal``, ``make formal``). See docs/formal.md."""
