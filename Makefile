# One command each: `make test` (the test suite), `make demo` (one run end to end),
# `make cluster-up` / `make cluster-down`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
HARNESS := PYTHONPATH=tests $(PYTHON) -m harness.controlplane

.PHONY: venv test test-unit lint demo bench bench-scale bench-status binaries cluster-up cluster-down cluster-status clean

venv: $(STAMP)

# Re-created whenever pyproject.toml changes; reused otherwise.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $@

test: $(STAMP)
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest -m "not cluster"

# Style, types and layers: ruff (lint + format) everywhere, mypy --strict on the package,
# import-linter's layer contracts (pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests examples benchmarks
	$(VENV)/bin/ruff format --check operator tests examples benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# One SmartResumeRun end to end on a local control plane against the local fakes.
demo: $(STAMP)
	PYTHONPATH=tests $(PY) examples/demo.py

# Throughput of the three tasks against the local fakes; prints figures, asserts nothing.
bench: $(STAMP)
	PYTHONPATH=tests $(PY) benchmarks/throughput.py

# The operator at scale against plain Jobs on its own local control plane (~10 min); prints
# figures, writes benchmarks/results/scale.json, asserts nothing.
bench-scale: $(STAMP)
	PYTHONPATH=tests $(PY) benchmarks/scale.py $(BENCH_ARGS)

# Status size and writes at 10 streams x 1,000 clients on a local control plane; prints figures.
bench-status: $(STAMP)
	PYTHONPATH=tests $(PY) benchmarks/status_size.py

binaries:
	bash hack/build-k8s-binaries.sh

cluster-up:
	$(HARNESS) up --dir .cluster

cluster-down:
	$(HARNESS) down --dir .cluster

cluster-status:
	$(HARNESS) status --dir .cluster

clean: cluster-down
	rm -rf $(VENV) .pytest_cache
