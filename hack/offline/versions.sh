# shellcheck shell=bash disable=SC2034
# Pinned versions of everything hack/offline builds. Changing a pin rebuilds what depends on it
# (binaries are stamped with their pin, images carry a hash of their inputs as a label).

KIND_VERSION=v0.33.0
HELM_VERSION=v3.22.0

# Kubernetes: 1.33.13 is the newest release whose staging modules are all on the Go mirror
# (1.32.x and 1.34.x lack some); 1.33 still runs on cgroup v1.
KUBE_VERSION=v1.33.13
ETCD_VERSION=v3.5.21           # go.etcd.io/etcd/server/v3; tagged as kubeadm expects (below)
COREDNS_VERSION=v1.14.3        # the oldest coredns the mirror holds
LOCAL_PATH_VERSION=v0.0.30     # rancher/local-path-provisioner, the only version held
METRICS_SERVER_VERSION=v0.9.0
PROM_OPERATOR_VERSION=v0.89.0  # same CRDs as ../shared/crds
# The mirror serves prometheus-operator/pkg/client v0.89.0 but the checksum database has no
# entry for it, so its hashes are pinned here (they match the v0.89.0 tag, e13fb157).
PROM_OPERATOR_CLIENT_SUM="h1:1vM3LYUbixaCObAhWj2JaDXVgq13laYGLVncKCQPjn4="
PROM_OPERATOR_CLIENT_GOMOD_SUM="h1:SdM9A8pyN23e5KAPumIqCPjCG075srdLJCemqr3bV6w="
# Prometheus v3.9.1 (module v0.309.1), the default of Prometheus Operator v0.89.0. Debian's
# prometheus 2.42 cannot serve here: it is built without Kubernetes service discovery.
PROMETHEUS_VERSION=v3.9.1
PROMETHEUS_MODULE_VERSION=v0.309.1
# NetworkPolicy enforcer: kube-router's firewall (network policy controller) alone, on iptables
# and ipset. kube-network-policies (kindnet's enforcer) needs the kernel's nft_queue, which these
# hosts lack (README). v2.1.0 is the only kube-router v2 the mirror holds.
KUBE_ROUTER_VERSION=v2.1.0
KUBE_ROUTER_IMAGE=docker.io/cloudnativelabs/kube-router:${KUBE_ROUTER_VERSION}

DEBIAN_SUITE=bookworm
PYTHON_BASE_IMAGE=mlstack/python-base:3.11-bookworm

# Image names the kubeadm of KUBE_VERSION asks for (`kubeadm config images list`); what runs
# inside etcd and coredns is ETCD_VERSION and COREDNS_VERSION.
KUBEADM_PAUSE_TAG=3.10
KUBEADM_ETCD_TAG=3.5.24-0
KUBEADM_COREDNS_TAG=v1.12.0

NODE_IMAGE=mlstack/kind-node-offline:${KUBE_VERSION}
# Release label the Prometheus selects ServiceMonitors, PodMonitors and PrometheusRules by,
# as kube-prometheus-stack does for a release of that name.
PROM_RELEASE=kube-prometheus-stack
MONITORING_NAMESPACE=monitoring
