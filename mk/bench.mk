# Benchmark: mlstack against MLServer, KServe and `mlflow models serve` (bench/README.md).
# BENCH_QUICK=1 for a short smoke run; every BENCH_* variable is described there.

.PHONY: bench
bench: $(STAMP) ## Benchmark the service against MLServer, KServe, mlflow serve (BENCH_QUICK=1: smoke run)
	$(PY) -m bench

.PHONY: bench-adopt
bench-adopt: $(STAMP) ## Notebook models before/after `mlstack adopt`: alias move -> serving, req/s via sklearn and ONNX
	$(PY) -m bench.adoption

.PHONY: bench-auth
bench-auth: $(STAMP) ## MLflow without and with basic auth: registry call time, alias move -> serving
	$(PY) -m bench.auth_swap

.PHONY: bench-training
bench-training: $(STAMP) ## The default round on 10k, 100k and 1M rows against a plain GridSearchCV (BENCH_TRAINING_ROWS)
	$(PY) -m bench.training
