#!/bin/bash
# Phase 5: `kind create cluster` from the user-facing kind config with the offline node image.
# The offline settings (the image) are given on the command line, not written into the config.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

config=$(kind_config)
name=$(cluster_name)
docker image inspect "$NODE_IMAGE" >/dev/null 2>&1 || die "no node image $NODE_IMAGE: run node-image.sh first"

# The node image networks pods with a static single-node bridge on kind's default pod subnet.
nodes=$(grep -cE '^[[:space:]]*-[[:space:]]*role:' "$config" || true)
((nodes <= 1)) || die "$config has $nodes nodes; the offline node image supports one (static CNI)"
if grep -qE '^[[:space:]]*podSubnet:' "$config" && ! grep -qE 'podSubnet:[[:space:]]*"?10\.244\.0\.0/16' "$config"; then
  die "$config sets a podSubnet other than 10.244.0.0/16, which the offline node image's CNI uses"
fi

if grep -qE '^[[:space:]]*serviceSubnet:' "$config" && ! grep -qE 'serviceSubnet:[[:space:]]*"?10\.96\.' "$config"; then
  die "$config sets a serviceSubnet outside 10.96.0.0/12, which the offline node image guards"
fi

if kind get clusters 2>/dev/null | grep -qxF "$name"; then
  log "cluster $name exists already: keeping it (make cluster-delete to start over)"
  running=$(docker inspect -f '{{.Image}}' "$name-control-plane" 2>/dev/null || true)
  if [[ -n $running && $running != "$(docker image inspect -f '{{.Id}}' "$NODE_IMAGE")" ]]; then
    log "WARNING: cluster $name runs an older node image than $NODE_IMAGE; make cluster-delete, then make cluster-offline"
  fi
else
  log "kind create cluster --name $name --config ${config#"$REPO_ROOT"/} --image $NODE_IMAGE"
  kind create cluster --name "$name" --config "$config" --image "$NODE_IMAGE" --wait 180s
fi
kctl wait --for=condition=Ready nodes --all --timeout=180s >/dev/null
log "cluster $name: context $(kube_context), Kubernetes $(kctl version -o json | jq -r .serverVersion.gitVersion)"
