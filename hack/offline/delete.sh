#!/bin/bash
# `make cluster-delete`: delete the kind cluster (the cache and the images stay).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
name=$(cluster_name)
if kind get clusters 2>/dev/null | grep -qxF "$name"; then
  kind delete cluster --name "$name"
else
  log "no kind cluster named $name"
fi
