# One command each: `make test` (the test suite), `make demo` (one run end to end),
# `make cluster-up` / `make cluster-down`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CHECKOV_VENV  ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
WORKER_JOB    := build/lint/worker-job.yaml
HARNESS := PYTHONPATH=tests $(PYTHON) -m harness.controlplane

.PHONY: venv test test-unit lint demo bench bench-client bench-scale bench-status binaries \
	cluster-up cluster-down cluster-status clean

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

# checkov's many dependencies stay out of the lint extra: it gets a virtualenv of its own.
$(CHECKOV_STAMP): hack/checkov-requirements.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet -r hack/checkov-requirements.txt
	touch $@

# Style, types and layers: ruff (lint + format) everywhere, mypy --strict on the package,
# import-linter's layer contracts (pyproject.toml). Then a peer's checks: hadolint on the
# Dockerfile, checkov on the install and on the worker Job the operator creates (.checkov.yaml
# lists the waived checks and why).
lint: $(STAMP) $(CHECKOV_STAMP)
	$(VENV)/bin/ruff check operator tests examples benchmarks hack
	$(VENV)/bin/ruff format --check operator tests examples benchmarks hack
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile
	$(PY) hack/render_worker_job.py $(WORKER_JOB)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -f $(WORKER_JOB) \
	  $(addprefix -f ,$(sort $(shell find manifests -name '*.yaml' ! -name kustomization.yaml)))

# One SmartResumeRun end to end on a local control plane against the local fakes.
demo: $(STAMP)
	PYTHONPATH=tests $(PY) examples/demo.py

# Throughput of the three tasks against the local fakes; prints figures, asserts nothing.
bench: $(STAMP)
	PYTHONPATH=tests $(PY) benchmarks/throughput.py

# One client through all three tasks, realistic latencies scaled down; prints figures (~6 min).
bench-client: $(STAMP)
	PYTHONPATH=tests $(PY) benchmarks/client_throughput.py

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
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache build/lint
