# modelops: `make test` sets up everything it needs (venv, control-plane binaries) and runs
# every check; `make generate` regenerates the CRD from the pydantic models and the plain
# manifests from the chart.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CRD := crds/modeldeployments.modelops.io.yaml

demo: venv packages binaries
	$(PY) -m modelops_dev.demo $(DEMO_ARGS)

.PHONY: demo test bench venv packages binaries lint typecheck imports unit integration crds manifests generate control-plane-up control-plane-down clean

# Two workers, a module at a time each: every worker starts a whole stack of its own (most of
# a test's time is spent waiting on rollout steps, scrapes and model servers, not computing).
TEST_WORKERS ?= 2
test: venv packages binaries lint typecheck imports
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The benchmarks of bench/, one after another (each starts its own control plane); figures on
# the terminal and as JSON under bench/results/, then one table of every goal (bench/summary.py).
# Never part of `make test`. 54 minutes on 2 cores (2026-12-06), about 32 of them the soak
# (BENCH_SOAK_MINUTES=5 for a quicker look).
BENCH_SHARDS_COUNT ?= 10000
BENCH_SOAK_MINUTES ?= 30
bench: BENCH_STARTED := $(shell date +%s)
bench: venv packages binaries
	$(PY) bench/reconcile_throughput.py --count 1000
	$(PY) bench/latency.py --count 100 --count 1000 --changes 50
	$(PY) bench/idle_cost.py --count 1000 --window 300
	$(PY) bench/soak.py --count 1000 --minutes $(BENCH_SOAK_MINUTES)
	$(PY) bench/rollback_latency.py --per-case 5
	$(PY) bench/shards.py --count $(BENCH_SHARDS_COUNT) --shards 4 --namespaces 4
	$(PY) bench/shards.py --count $(BENCH_SHARDS_COUNT) --shards 4 --namespaces 4 --cold-start
	$(PY) bench/monitor.py
	$(PY) bench/summary.py --started $(BENCH_STARTED)

venv: $(VENV)/.installed

# The operator (with its dev tools) and the local cluster (devstack/, never in the operator's
# wheel or image), both editable from this checkout.
$(VENV)/.installed: pyproject.toml devstack/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]' -e ./devstack
	$(VENV)/bin/pip check
	touch $@

# Debian packages of the local stack (Prometheus, ...), installed when missing.
packages:
	hack/install-packages

# Control-plane and KServe binaries (reused from KUBEBUILDER_ASSETS, PATH or ~/.cache/modelops,
# else built from Go modules) and the model-server Python environments (cached likewise).
binaries: venv
	$(PY) -m modelops_dev.binaries
	$(PY) -m modelops_dev.environments

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

imports: venv
	$(VENV)/bin/lint-imports

unit: venv packages
	$(PY) -m pytest tests/unit

integration: venv packages binaries
	$(PY) -m pytest tests/integration

crds: venv
	$(PY) -m modelops.api.crd > $(CRD)
	$(PY) -m modelops.api.crd --chart > charts/modelops/templates/crds.yaml

# manifests/install from the chart (helm template); needs helm (make binaries builds it).
manifests: crds
	$(PY) -m modelops_dev.manifests

# Every generated file: the CRD (crds/, the chart's template) and manifests/install.
generate: manifests

control-plane-up: venv binaries
	hack/control-plane up

control-plane-down:
	hack/control-plane down

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
