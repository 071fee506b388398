#!/bin/bash
# `make cluster-check`: what the project needs of the cluster, each check bounded in time.
# Ends by proving `kind delete cluster` cleans up, then recreates the cluster from the cache
# (CHECK_DELETE=0 skips that last part).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export PROM_RELEASE CHECK_NAMESPACE=mlstack-check CHECK_IMAGE=mlstack/offline-check:1
name=$(cluster_name)
ctx=$(kube_context)
passed=0
pass() { passed=$((passed + 1)); log "PASS: $*"; }

pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# port_forward TARGET REMOTE_PORT NAMESPACE PROBE_PATH: forward a free local port, set PF_PORT.
port_forward() {
  PF_PORT=$(free_port)
  # kubectl itself in the background (not the kctl function, whose subshell would get the PID).
  kubectl --context "$ctx" -n "$3" port-forward "$1" "$PF_PORT:$2" >"$CACHE/logs/port-forward.log" 2>&1 &
  pids+=($!)
  wait_for "port-forward of $3/$1 on 127.0.0.1:$PF_PORT" 30 curl -fsS -o /dev/null "http://127.0.0.1:$PF_PORT$4"
}

kind get clusters 2>/dev/null | grep -qxF "$name" || die "no kind cluster $name: run make cluster-offline"

# 1. Nodes
kctl wait --for=condition=Ready nodes --all --timeout=120s >/dev/null
pass "all nodes Ready: $(kctl get nodes --no-headers | awk '{printf "%s(%s) ", $1, $2}')"

# 2. A locally built image, loaded into the node, as a Deployment.
build_start=$SECONDS
docker_build --build-arg "BASE=$PYTHON_BASE_IMAGE" -t "$CHECK_IMAGE" "$OFFLINE_DIR/images/check-app"
kind load docker-image --name "$name" "$CHECK_IMAGE" >/dev/null
log "test image $CHECK_IMAGE built on $PYTHON_BASE_IMAGE and loaded in $((SECONDS - build_start))s"
kctl delete namespace "$CHECK_NAMESPACE" --ignore-not-found --timeout=120s >/dev/null
kctl create namespace "$CHECK_NAMESPACE" >/dev/null
render "$OFFLINE_DIR/manifests/check.yaml" | kctl apply -f - >/dev/null
kctl -n "$CHECK_NAMESPACE" wait --for=condition=Available deploy/check-app --timeout=120s >/dev/null
pass "Deployment check-app ($CHECK_IMAGE) Available"

# 3. Service through cluster DNS from another pod.
kctl -n "$CHECK_NAMESPACE" wait --for=jsonpath='{.status.phase}'=Succeeded pod/check-dns-client --timeout=120s >/dev/null
pass "from another pod: $(kctl -n "$CHECK_NAMESPACE" logs check-dns-client | tail -2 | tr '\n' ' ')"

# 4. PVC on the default StorageClass.
kctl -n "$CHECK_NAMESPACE" wait --for=jsonpath='{.status.phase}'=Bound pvc/check-data --timeout=120s >/dev/null
kctl -n "$CHECK_NAMESPACE" wait --for=jsonpath='{.status.phase}'=Succeeded pod/check-volume --timeout=120s >/dev/null
pass "PVC check-data Bound ($(kctl -n "$CHECK_NAMESPACE" get pvc check-data -o jsonpath='{.spec.storageClassName} {.spec.volumeName}')), pod wrote and read it back"

# 5. kubectl top pods
top_numbers() { kctl -n "$CHECK_NAMESPACE" top pods --no-headers 2>/dev/null | grep -E '^check-app-[^ ]+ +[0-9]+m +[0-9]+Mi'; }
wait_for "kubectl top pods to return numbers" 180 top_numbers
pass "kubectl top pods: $(top_numbers | head -1 | tr -s ' ')"

# 6. HPA with a numeric CPU target
hpa_numeric() { kctl -n "$CHECK_NAMESPACE" get hpa check-app -o json | jq -e '.status.currentMetrics[0].resource.current.averageUtilization | numbers'; }
wait_for "the HPA to show a numeric CPU utilization" 180 hpa_numeric
pass "HPA check-app targets: $(kctl -n "$CHECK_NAMESPACE" get hpa check-app --no-headers | awk '{print $3, $4}')"

# 7. ServiceMonitor target up in Prometheus, read through a port-forward from the host.
port_forward "svc/$PROM_RELEASE-prometheus" 9090 "$MONITORING_NAMESPACE" /-/ready
prom_port=$PF_PORT
target_up() {
  curl -fsS "http://127.0.0.1:$prom_port/api/v1/targets?state=active" |
    jq -e --arg pool "serviceMonitor/$CHECK_NAMESPACE/check-app/0" \
      '[.data.activeTargets[] | select(.scrapePool == $pool and .health == "up")] | length > 0'
}
wait_for "Prometheus target serviceMonitor/$CHECK_NAMESPACE/check-app/0 to be up" 240 target_up
pass "Prometheus /api/v1/targets: serviceMonitor/$CHECK_NAMESPACE/check-app/0 up"

# 8. port-forward then curl from the host
port_forward svc/check-app 80 "$CHECK_NAMESPACE" /
app_port=$PF_PORT
pass "curl http://127.0.0.1:$app_port/ through kubectl port-forward: $(curl -fsS "http://127.0.0.1:$app_port/")"
cleanup
pids=()

# 9. NetworkPolicies are enforced: under check-netpol.yaml a client is refused until it carries
# the allowed label. Refused means the enforcer's REJECT: not a timeout, not an egress proxy's answer.
wait_for "the NetworkPolicy enforcer (DaemonSet kube-system/kube-router) to be ready" 120 \
  kctl -n kube-system rollout status ds/kube-router --timeout=5s
pass "NetworkPolicy enforcer kube-system/kube-router ready on $(kctl -n kube-system get ds kube-router -o jsonpath='{.status.numberReady}/{.status.desiredNumberScheduled}') nodes"
kctl -n "$CHECK_NAMESPACE" wait --for=condition=Ready pod/check-netpol-client --timeout=120s >/dev/null
netpol_probe() {
  kctl -n "$CHECK_NAMESPACE" exec check-netpol-client -- python3 -c '
import urllib.request
print(urllib.request.urlopen("http://check-app/", timeout=3).read().decode().strip())' 2>&1 || true
}
answered() { [[ $(netpol_probe) == "ok from check-app-"* ]]; }
refused() { [[ $(netpol_probe) == *"Connection refused"* ]]; }
answered || die "check-netpol-client cannot reach check-app before any NetworkPolicy: $(netpol_probe)"
ms_since() { echo $(((${EPOCHREALTIME/./} - ${1/./}) / 1000)); }
render "$OFFLINE_DIR/manifests/check-netpol.yaml" | kctl apply -f - >/dev/null
applied=$EPOCHREALTIME
wait_for "check-app to refuse check-netpol-client under default-deny ingress" 60 refused
pass "default-deny ingress enforced within $(ms_since "$applied") ms: $(netpol_probe | grep -o '<urlopen error.*>')"
kctl -n "$CHECK_NAMESPACE" label pod check-netpol-client check-netpol=allowed >/dev/null
applied=$EPOCHREALTIME
wait_for "check-app to answer check-netpol-client once labelled check-netpol=allowed" 60 answered
pass "podSelector allow enforced within $(ms_since "$applied") ms: $(netpol_probe)"
kctl delete namespace "$CHECK_NAMESPACE" --wait=false >/dev/null

# 10. kind delete cluster cleans up: no node containers, no kubeconfig context. Then rebuild.
if [[ ${CHECK_DELETE:-1} == 1 ]]; then
  kind delete cluster --name "$name"
  leftovers=$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$name")
  [[ -z $leftovers ]] || die "node containers left after kind delete: $leftovers"
  ! kubectl config get-contexts -o name | grep -qxF "$ctx" || die "context $ctx left in kubeconfig"
  ! kind get clusters 2>/dev/null | grep -qxF "$name" || die "kind still lists $name"
  pass "kind delete cluster $name: no containers, no context left"
  log "recreating cluster $name from the cache"
  "$OFFLINE_DIR/cluster-offline.sh" create addons
fi
echo "$passed passed, 0 failed"
