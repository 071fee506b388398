# The control plane: the prediction log, registry views, promotion and rollback (`mlstack`).
# Its tests need Debian's PostgreSQL server binaries: `control-setup` installs them if missing.
# The training-Job tests need kube-apiserver and etcd: `control-kube-bin` builds them from the
# Go module proxy into .cache/offline/bin, as `make cluster-offline` does (go on PATH; ~7 min
# cold on 2 cores, then a no-op until their pins in hack/offline/versions.sh change).

CONTROL_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

TEST_EXTRA += control-test

.PHONY: control-setup
control-setup: ## Install PostgreSQL (Debian's package) for the control-plane tests, if missing
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries: $$(ls -d /usr/lib/postgresql/*/bin | tail -1)"; \
	else \
		echo "installing postgresql (apt-get)"; \
		$(CONTROL_SUDO) apt-get update -qq && \
		$(CONTROL_SUDO) apt-get install -y --no-install-recommends postgresql; \
	fi

.PHONY: control-kube-bin
control-kube-bin: ## Build kube-apiserver and etcd for the control-plane tests (cached in .cache/offline/bin)
	hack/offline/tools.sh kube-apiserver etcd

.PHONY: control-test
control-test: $(STAMP) control-setup control-kube-bin ## Control-plane tests: real mlflow, uvicorn, SQLite, PostgreSQL, kube-apiserver
	$(PY) -m pytest tests/control -q

.PHONY: control
control: $(STAMP) ## Run the control plane locally (SQLite under .data/control) on :8090
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:5000} \
	MLSTACK_CONTROL_SQLITE_PATH=$${MLSTACK_CONTROL_SQLITE_PATH:-$(CURDIR)/.data/control/predictions.db} \
	$(VENV)/bin/mlstack serve

.PHONY: control-bench
control-bench: $(STAMP) control-setup ## Query times of the prediction log at 1M rows, SQLite then PostgreSQL
	$(PY) -m bench.log_queries
	$(PY) -m bench.log_queries --postgres
