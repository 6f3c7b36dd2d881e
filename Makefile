# The two README commands. Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("limemu needs Python >= 3.10, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Main job: a Max-Cut demo on the golden model, its energy report, then the cross-check of
# the vectorised model against the cycle-by-cycle reference.
demo: $(STAMP)
	$(BIN)/limemu run --workload maxcut --json runs/demo.json
	$(BIN)/limemu crosscheck --workload maxcut --cells 48 --steps 300

# Whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto

bench: $(STAMP)
	$(BIN)/python scripts/bench_model.py

clean:
	rm -rf $(VENV) runs build sim_build
