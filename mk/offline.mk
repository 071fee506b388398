# A kind cluster built without any container registry (hack/offline/README.md).
# Users with the internet do not need these targets: plain `kind create cluster` does it.
OFFLINE := hack/offline

.PHONY: cluster-offline
cluster-offline: ## Build tools and images from package registries (cached) and create the kind cluster with addons
	$(OFFLINE)/cluster-offline.sh

.PHONY: cluster-check
cluster-check: ## Check the offline cluster: nodes, DNS, PVC, top, HPA, Prometheus target, port-forward, NetworkPolicy, delete (then recreate)
	$(OFFLINE)/check.sh

.PHONY: cluster-delete
cluster-delete: ## Delete the kind cluster (the offline cache and images stay)
	$(OFFLINE)/delete.sh

.PHONY: base-offline
base-offline: ## Build the Python 3.11 base image mlstack/python-base:3.11-bookworm without a registry
	$(OFFLINE)/engine.sh
	$(OFFLINE)/images.sh python-base
