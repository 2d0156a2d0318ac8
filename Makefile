# The two commands of README.md: `make quickstart` and `make test`. Both set up from nothing and are idempotent.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := True
export DGLBACKEND := pytorch
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export SPARK_LOCAL_IP := 127.0.0.1

.PHONY: setup quickstart test test-unit test-integration lint

setup: $(VENV)/.installed

# torch is installed first and pinned in every later step: an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q torch==2.13.0 -e ".[dev]"
	touch $@

quickstart: setup
	$(VENV)/bin/glom quickstart

test: setup
	bash ci/test.sh

test-unit: setup
	bash ci/test.sh unit

test-integration: setup
	bash ci/test.sh integration

lint: setup
	$(VENV)/bin/ruff check glom_plugin tests benchmarks
