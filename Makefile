# The two README commands. Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test formal bench bench-board bench-rtl bench-vboard clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("limemu needs Python >= 3.10, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Main job: a Max-Cut demo on the golden model, its energy report, then the cross-check of
# the model against the RTL under Verilator, bit for bit at 4 checkpoints.
demo: $(STAMP)
	$(BIN)/limemu run --workload maxcut --json runs/demo.json
	$(BIN)/limemu crosscheck --backend verilator --workload maxcut --cells 48 --steps 300

# Whole test suite; the 25 slowest tests listed at the end (where the suite's time goes)
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --durations=25

# Formal proofs of the RTL (SymbiYosys) and their mutations (docs/formal.md); FORMAL_JOBS
# runs at once; LIMEMU_FORMAL_DEEP=1 checks the bounded ones deeper
FORMAL_JOBS ?= 2
formal: $(STAMP)
	$(BIN)/python -m formal --jobs $(FORMAL_JOBS)

# The golden model against dwave-samplers' simulated annealer (the bench extra)
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python scripts/bench_model.py

# The ULX3S build's core (Verilator) against dwave-samplers: time to 99 % of a reference cut
bench-board: $(BENCH_STAMP)
	$(BIN)/python scripts/bench_board.py

bench-rtl: $(STAMP)
	$(BIN)/python scripts/bench_rtl.py

bench-vboard: $(STAMP)
	$(BIN)/python scripts/bench_vboard.py

clean:
	rm -rf $(VENV) runs build sim_build
