# Kubernetes packaging: images, the Helm chart, the kind cluster workflow and the chart checks.

CHART := charts/mlstack
RELEASE ?= mlstack
NAMESPACE ?= mlstack
CLUSTER ?= mlstack
KUBECTL ?= kubectl
HELM := $(TOOLS)/helm
KIND := $(TOOLS)/kind
# The one version (pyproject.toml), also the chart's and the images' (hack/release.py).
VERSION ?= $(shell python3 hack/release.py version)
# The images' base; empty for the Dockerfile's default (a public Python slim image). Machines
# with no container registry build one (`make base-offline`) and pass
# BASE_IMAGE=mlstack/python-base:3.11-bookworm.
BASE_IMAGE ?=
INFERENCE_IMAGE ?= mlstack-inference:$(VERSION)
TRAINING_IMAGE ?= mlstack-training:$(VERSION)
TRACKING_IMAGE ?= mlstack-tracking-server:$(VERSION)
# Node image of `make cluster`; empty for kind-config.yaml's.
KIND_NODE_IMAGE ?=
KUBE_PROMETHEUS_STACK_VERSION ?= 82.9.0
MONITORING_NAMESPACE ?= monitoring
# `make up` installs the kube-prometheus stack too (it needs the internet); MONITORING=0 skips it.
MONITORING ?= 1
DEPLOY_TIMEOUT ?= 15m
BUILD_ARGS = --build-arg VERSION=$(VERSION) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE))

TEST_EXTRA += chart-test

.PHONY: chart-tools
chart-tools: ## Build helm, kubeconform, helm-docs (pinned) and install promtool if missing
	hack/chart/setup.sh

.PHONY: chart-test
chart-test: $(STAMP) chart-tools ## Chart checks: lint, schemas, policies, promtool, PromQL, staleness
	$(PY) -m pytest tests/chart -q

.PHONY: chart-docs
chart-docs: chart-tools ## Regenerate the chart's README parameter table (helm-docs)
	$(TOOLS)/helm-docs --chart-search-root charts --template-files README.md.gotmpl

.PHONY: manifests
manifests: $(STAMP) chart-tools ## Render manifests/ from the chart with the kind values
	$(PY) hack/chart/render_manifests.py

.PHONY: images
images: ## Build the inference, training and tracking-server images and print their sizes
	docker build --target tracking-server $(BUILD_ARGS) -t $(TRACKING_IMAGE) .
	docker build --target training $(BUILD_ARGS) -t $(TRAINING_IMAGE) .
	docker build --target inference $(BUILD_ARGS) -t $(INFERENCE_IMAGE) .
	@hack/images/sizes.sh $(INFERENCE_IMAGE) $(TRAINING_IMAGE) $(TRACKING_IMAGE)

.PHONY: cluster
cluster: ## Create the kind cluster from kind-config.yaml (KIND_NODE_IMAGE=... to override)
	hack/tools.sh kind
	@if $(KIND) get clusters 2>/dev/null | grep -qx '$(CLUSTER)'; then \
		echo "kind cluster $(CLUSTER) exists"; \
	else \
		$(KIND) create cluster --name $(CLUSTER) --config kind-config.yaml --wait 180s \
			$(if $(KIND_NODE_IMAGE),--image $(KIND_NODE_IMAGE)); \
	fi

.PHONY: load
load: ## Load the three images into the kind cluster's nodes (no registry)
	hack/tools.sh kind
	$(KIND) load docker-image --name $(CLUSTER) $(INFERENCE_IMAGE) $(TRAINING_IMAGE) $(TRACKING_IMAGE)

.PHONY: monitoring
monitoring: chart-tools ## Install the kube-prometheus stack (needs the internet)
	$(HELM) repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
	$(HELM) upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
		--version $(KUBE_PROMETHEUS_STACK_VERSION) --namespace $(MONITORING_NAMESPACE) --create-namespace \
		--values hack/chart/kube-prometheus-stack-values.yaml --wait --timeout 10m

.PHONY: deploy
deploy: chart-tools ## Install or upgrade the chart with the kind values and wait for it
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --create-namespace \
		--values $(CHART)/values-kind.yaml \
		--set image.inference.tag=$(VERSION) --set image.training.tag=$(VERSION) --set image.trackingServer.tag=$(VERSION) \
		--wait --timeout $(DEPLOY_TIMEOUT)

.PHONY: port-forward
port-forward: ## Forward inference :8080, MLflow :5000 and Grafana :3000 until Ctrl-C
	KUBECTL=$(KUBECTL) hack/chart/port-forward.sh $(NAMESPACE) $(RELEASE) $(MONITORING_NAMESPACE)

.PHONY: smoke
smoke: chart-tools ## One real prediction from inside the cluster (helm test)
	$(HELM) test $(RELEASE) --namespace $(NAMESPACE) --logs --timeout 2m

.PHONY: down
down: ## Delete the kind cluster
	hack/tools.sh kind
	$(KIND) delete cluster --name $(CLUSTER)

.PHONY: up
up: cluster images load $(if $(filter 1,$(MONITORING)),monitoring) deploy smoke ## Cluster, images, monitoring, chart, smoke test
