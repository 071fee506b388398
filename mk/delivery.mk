# Delivery: the workflows' lint, the security checks, the images' checks, the chart's package
# and the release. The GitHub workflows (.github/workflows/) call these same targets.

OFFLINE_BASE := mlstack/python-base:3.11-bookworm
# Whether a Docker engine answers here (the image checks need one).
DOCKER_UP = $(shell docker info >/dev/null 2>&1 && echo yes)
# The base of `make image-check`'s build: BASE_IMAGE, else the offline base where it was made,
# else the Dockerfile's default.
IMAGE_CHECK_BASE = $(or $(BASE_IMAGE),$(shell docker image inspect $(OFFLINE_BASE) >/dev/null 2>&1 && echo $(OFFLINE_BASE)))
IMAGE_CHECK_TAG ?= $(VERSION)
IMAGE_CHECK_ROLES ?= inference training tracking-server
BANDIT_SARIF ?=
AUDIT_SARIF ?=
CHART_RENDER_DIR ?= .cache/chart/rendered
METRICS_SERVER_CHART_VERSION ?= 3.13.0

TEST_EXTRA += delivery-test

.PHONY: actionlint
actionlint: ## Lint the GitHub workflows (actionlint, pinned, built into .cache/bin)
	hack/tools.sh actionlint
	$(TOOLS)/actionlint -no-color

.PHONY: bandit
bandit: $(STAMP) ## Bandit over the Python packages: fails on a medium or high finding (BANDIT_SARIF=file too)
	$(VENV)/bin/bandit -q -r app training control kernel --severity-level medium
	$(if $(BANDIT_SARIF),$(VENV)/bin/bandit -q -r app training control kernel --exit-zero -f sarif -o $(BANDIT_SARIF))

.PHONY: audit
audit: $(STAMP) ## pip-audit over uv.lock (needs PyPI's vulnerability data: the workflow runs it; AUDIT_SARIF=file too)
	$(PY) hack/audit.py $(if $(AUDIT_SARIF),--sarif $(AUDIT_SARIF))

.PHONY: delivery-test
delivery-test: $(STAMP) actionlint bandit ## actionlint, Bandit, the release tooling, and the image checks where Docker runs
	$(PY) -m pytest tests/delivery -q
	@if [ -n "$(DOCKER_UP)" ]; then \
		$(MAKE) --no-print-directory image-check; \
	else \
		echo "image checks: no Docker engine answers here, so they did not run (make e2e always runs them)"; \
	fi

.PHONY: image-check
image-check: $(STAMP) ## Build the three images and check their config and files (user, shell, compilers, caches, base)
	$(MAKE) --no-print-directory images $(if $(IMAGE_CHECK_BASE),BASE_IMAGE=$(IMAGE_CHECK_BASE)) VERSION=$(IMAGE_CHECK_TAG)
	$(MAKE) --no-print-directory image-check-built

.PHONY: image-check-built
image-check-built: $(STAMP) ## Check images already built (IMAGE_CHECK_TAG, IMAGE_CHECK_ROLES)
	IMAGE_CHECK_TAG=$(IMAGE_CHECK_TAG) IMAGE_CHECK_ROLES="$(IMAGE_CHECK_ROLES)" $(PY) -m pytest tests/images -q

.PHONY: chart-package
chart-package: chart-tools ## helm lint, then package the chart into .cache/chart/ (its version is the project's)
	$(HELM) lint $(CHART) --strict
	$(HELM) package $(CHART) --destination .cache/chart

.PHONY: chart-render
chart-render: chart-tools ## Render the chart's default and kind values into CHART_RENDER_DIR (for scanners)
	mkdir -p $(CHART_RENDER_DIR)
	$(HELM) template $(RELEASE) $(CHART) --namespace $(NAMESPACE) > $(CHART_RENDER_DIR)/default.yaml
	$(HELM) template $(RELEASE) $(CHART) --namespace $(NAMESPACE) --values $(CHART)/values-kind.yaml > $(CHART_RENDER_DIR)/kind.yaml

.PHONY: metrics-server
metrics-server: chart-tools ## Install metrics-server for the HPA on a cluster with the internet (kind's kubelets: insecure TLS)
	$(HELM) repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update
	$(HELM) upgrade --install metrics-server metrics-server/metrics-server \
		--version $(METRICS_SERVER_CHART_VERSION) --namespace kube-system \
		--set 'args={--kubelet-insecure-tls}' --wait --timeout 5m

.PHONY: release
release: ## Release VERSION=x.y.z: refuse a dirty tree, write it everywhere, regenerate, commit and tag
	@test -n "$(filter command line,$(origin VERSION))" || { echo "usage: make release VERSION=x.y.z"; exit 2; }
	python3 hack/release.py bump $(VERSION)
	$(MAKE) --no-print-directory manifests chart-docs VERSION=$(VERSION) || { \
		git checkout -q -- . && echo "release: regenerating failed; the tree is as it was" >&2; exit 1; }
	git add -A pyproject.toml uv.lock Dockerfile README.md CHANGELOG.md charts manifests tests/e2e/user_training
	git commit -q -m "Release $(VERSION)"
	git tag -a v$(VERSION) -m "mlstack $(VERSION)"
	@echo "released $(VERSION): push with  git push origin HEAD v$(VERSION)"
