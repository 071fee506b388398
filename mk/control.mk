# The control plane: the prediction log, registry views, promotion and rollback (`mlstack`).
# Its tests need Debian's PostgreSQL server binaries: `control-setup` installs them if missing.

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

.PHONY: control-test
control-test: $(STAMP) control-setup ## Control-plane tests: real mlflow, uvicorn, SQLite and PostgreSQL
	$(PY) -m pytest tests/control -q

.PHONY: control
control: $(STAMP) ## Run the control plane locally (SQLite under .data/control) on :8090
	MLFLOW_TRACKING_URI=$${MLFLOW_TRACKING_URI:-http://127.0.0.1:5000} \
	MLSTACK_CONTROL_SQLITE_PATH=$${MLSTACK_CONTROL_SQLITE_PATH:-$(CURDIR)/.data/control/predictions.db} \
	$(VENV)/bin/mlstack serve

.PHONY: control-bench
control-bench: $(STAMP) control-setup ## Query times of the prediction log at 1M rows, SQLite then PostgreSQL
	$(PY) -m control.bench_log
	$(PY) -m control.bench_log --postgres
