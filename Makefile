# mlstack: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_VERSION ?= 3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced-stamp
TOOLS := .cache/bin

# The cluster workflow's release and namespace (`make deploy`, `make train`, `make e2e`).
RELEASE ?= mlstack
NAMESPACE ?= mlstack

# Each area adds its targets in mk/<area>.mk and its checks to TEST_EXTRA.
TEST_EXTRA :=
include $(sort $(wildcard mk/*.mk))

.PHONY: help
help: ## List every target with its description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml uv.lock
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	uv sync --frozen --all-extras --python $(PYTHON_VERSION)
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create the virtual environment from the lock file

.PHONY: lock
lock: ## Re-resolve dependencies into uv.lock
	uv lock --python $(PYTHON_VERSION)

.PHONY: lint
lint: $(STAMP) ## Ruff lint and format check, mypy on app/ and training/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: fmt
fmt: $(STAMP) ## Format and autofix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: unit
unit: $(STAMP) ## Unit tests (no processes started)
	$(PY) -m pytest tests/unit -q

.PHONY: integration
integration: $(STAMP) ## Integration tests against real mlflow server and uvicorn processes
	$(PY) -m pytest tests/integration -q

.PHONY: test
test: lint unit integration $(TEST_EXTRA) ## Every check that needs no cluster (what CI runs)

.PHONY: train-local
train-local: $(STAMP) ## One training round against MLFLOW_TRACKING_URI (default the demo server)
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:5000} $(PY) -m training $(ARGS)

.PHONY: demo
demo: $(STAMP) ## Local MLflow + a training round + the service, end to end, then stop it all
	$(PY) -m hack.demo

.PHONY: mlflow
mlflow: $(STAMP) ## Browse the demo's MLflow data (SQLite under .data/) at http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server --host 127.0.0.1 \
	  --port 5000 --workers 1 --backend-store-uri sqlite:///$(CURDIR)/.data/mlflow/mlflow.db \
	  --artifacts-destination $(CURDIR)/.data/mlflow/artifacts

.PHONY: serve
serve: $(STAMP) ## Run the service locally against MLFLOW_TRACKING_URI (default the demo server)
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:5000} $(PY) -m app

.PHONY: train
train: $(STAMP) ## Start a training Job in the cluster and follow it (ARGS='--force' etc. go to the round)
	$(VENV)/bin/mlstack train --namespace $(NAMESPACE) --release $(RELEASE) -- $(ARGS)

.PHONY: e2e
e2e: $(STAMP) chart-tools ## End-to-end scenarios on the kind cluster (create it first: make cluster-offline)
	$(PY) -m pytest tests/e2e -x -v -s -p no:cacheprovider
