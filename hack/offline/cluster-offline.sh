#!/bin/bash
# `make cluster-offline`: every phase in order (or the phases named as arguments), each timed.
#   engine tools images node-image create addons
# Everything built is cached under .cache/offline/, so a second run only creates the cluster.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

phases=("$@")
((${#phases[@]})) || phases=(engine tools images node-image create addons)

# Peak disk use of the file system holding the cache, sampled while the phases run.
disk_used() { df --output=used -B1 "$CACHE" | tail -1; }
disk_start=$(disk_used)
echo "$disk_start" >"$CACHE/logs/disk-peak"
( while sleep 5; do u=$(disk_used); ((u > $(cat "$CACHE/logs/disk-peak"))) && echo "$u" >"$CACHE/logs/disk-peak"; done ) &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT

timings=()
total_start=$SECONDS
for phase in "${phases[@]}"; do
  [[ -x $OFFLINE_DIR/$phase.sh ]] || die "unknown phase $phase (engine tools images node-image create addons)"
  log "=== phase $phase"
  start=$SECONDS
  "$OFFLINE_DIR/$phase.sh"
  timings+=("$(printf '%-11s %5ss' "$phase" $((SECONDS - start)))")
  log "=== phase $phase done in $((SECONDS - start))s"
done
total=$((SECONDS - total_start))

kill "$sampler" 2>/dev/null || true
peak=$(( ($(cat "$CACHE/logs/disk-peak") - disk_start) ))
{
  echo "phase        wall"
  printf '%s\n' "${timings[@]}"
  printf '%-11s %5ss\n' total "$total"
  echo "disk: peak growth $(numfmt --to=iec "$((peak > 0 ? peak : 0))") on $(df --output=target "$CACHE" | tail -1) during this run; cache $(du -sh "$CACHE" 2>/dev/null | cut -f1)"
} | tee -a "$CACHE/logs/timings.log"
if [[ " ${phases[*]} " == *" create "* ]]; then
  log "cluster $(cluster_name) is up: kubectl --context $(kube_context) ...; make cluster-check verifies it"
fi
