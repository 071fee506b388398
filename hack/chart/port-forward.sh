#!/usr/bin/env bash
# Forward the inference service, MLflow and (when installed) Grafana to localhost until Ctrl-C.
# Usage: hack/chart/port-forward.sh NAMESPACE RELEASE [MONITORING_NAMESPACE]
set -euo pipefail

namespace="$1"
release="$2"
monitoring="${3:-monitoring}"
kubectl="${KUBECTL:-kubectl}"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

forward() {  # forward NAMESPACE SERVICE LOCAL:REMOTE
  "$kubectl" -n "$1" port-forward "svc/$2" "$3" >/dev/null &
  pids+=("$!")
  local port="${3%%:*}"
  echo "waiting for localhost:$port → $1/$2 (up to 30 s)"
  for _ in $(seq 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "port-forward to $1/$2 did not come up" >&2
  return 1
}

forward "$namespace" "$release-inference" 8080:8080
forward "$namespace" "$release-mlflow" 5000:5000
if "$kubectl" -n "$monitoring" get svc kube-prometheus-stack-grafana >/dev/null 2>&1; then
  forward "$monitoring" kube-prometheus-stack-grafana 3000:80
  echo "Grafana     http://127.0.0.1:3000 (user admin, password: kubectl -n $monitoring get secret kube-prometheus-stack-grafana -o jsonpath='{.data.admin-password}' | base64 -d)"
fi
echo "inference   http://127.0.0.1:8080  (curl -s localhost:8080/model)"
echo "MLflow      http://127.0.0.1:5000"
echo "Ctrl-C stops the forwards."
wait
