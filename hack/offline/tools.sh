#!/bin/bash
# Phase 2: every binary, built from the Go module proxy at the pins in versions.sh into
# $CACHE/bin. A binary is rebuilt only when missing or when its pin (stamp) changes.
#   hack/offline/tools.sh [BINARY...]   e.g. `tools.sh kube-apiserver etcd` (what
#   `make control-test` needs); no arguments: every binary below.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KUBE_CMDS=(kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
BINARIES=(kind helm pause "${KUBE_CMDS[@]}" etcd coredns local-path-provisioner metrics-server
  operator prometheus-config-reloader prometheus kube-router)

# Go comes from PATH (GOTOOLCHAIN=local: the wrapper modules need go 1.24 or newer); a shell
# whose PATH lacks the usual install location still finds it there.
command -v go >/dev/null || [[ ! -x /usr/local/go/bin/go ]] || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || die "go 1.24 or newer is needed on PATH (none found, nor /usr/local/go/bin/go)"

# proxy_info MODULE VERSION FIELD: a field of the proxy's .info (Time, Origin.Hash), or "".
# A version's .info never changes: it is kept under $CACHE/proxy-info once fetched, so stamps
# (which include these fields) do not change, and nothing is rebuilt, when the proxy is away.
proxy_info() {
  local file="$CACHE/proxy-info/$1@$2.info"
  if [[ ! -s $file ]]; then
    mkdir -p "$(dirname "$file")"
    if curl -fsS --max-time 30 "${GOPROXY%%,*}/$1/@v/$2.info" >"$file.tmp" 2>/dev/null &&
      jq -e . "$file.tmp" >/dev/null 2>&1; then
      mv "$file.tmp" "$file"
    else
      rm -f "$file.tmp"
    fi
  fi
  if [[ -s $file ]]; then jq -r ".$3 // empty" "$file"; fi
}

# wrapper_module DIR MODULE VERSION SIBLING_VERSION PKG...: a module of our own in DIR that
# requires MODULE@VERSION and repeats each of its local-path `replace` lines with the published
# module at SIBLING_VERSION (a module zip holds no nested modules) and its `exclude` lines,
# plus a tools.go importing PKG... so `go mod tidy` keeps what they need. (`go install` refuses
# modules with replace or exclude lines.)
wrapper_module() {
  local dir=$1 module=$2 version=$3 sibling=$4; shift 4
  local src
  src=$(module_dir "$module@$version")
  rm -rf "$dir" && mkdir -p "$dir"
  {
    printf 'module mlstack.offline/%s\n\ngo 1.24.0\n\nrequire %s %s\n\n' "$(basename "$dir")" "$module" "$version"
    # The version is the one MODULE's go.mod requires, or SIBLING_VERSION for v0.0.0 placeholders.
    awk -v v="$sibling" '
      $1 == "require" && NF == 3 { req[$2] = $3 }
      /^require[[:space:]]*\(/ { inreq = 1; next }
      inreq && /^\)/ { inreq = 0 }
      inreq && NF >= 2 { req[$1] = $2 }
      /^replace[[:space:]]*\(/ { inblock = 1; next }
      inblock && /^\)/ { inblock = 0; next }
      {
        line = $0; sub(/^replace[[:space:]]+/, "", line)
        if ((inblock || $1 == "replace") && line ~ /=>[[:space:]]*\.\.?\// && line !~ /FORBIDDEN/) {
          split(line, f, /[[:space:]]+/); m = (f[1] == "" ? f[2] : f[1])
          ver = (m in req && req[m] !~ /^v0\.0\.0/) ? req[m] : v
          printf "replace %s => %s %s\n", m, m, ver
        }
      }' "$src/go.mod"
    # exclude lines count only in the main module: repeat them too.
    awk '/^exclude[[:space:]]*\(/ { on = 1; print; next } on { print; if (/^\)/) on = 0; next } /^exclude / { print }' "$src/go.mod"
  } >"$dir/go.mod"
  {
    printf '//go:build tools\n\n// Package tools pins the commands this wrapper module builds.\npackage tools\n\nimport (\n'
    printf '\t_ "%s"\n' "$@"
    printf ')\n'
  } >"$dir/tools.go"
}

# build_kubernetes [CMD...]: the Kubernetes commands named (default: all of KUBE_CMDS), each
# stamped on its own, so a subset build leaves the others to a later full run.
build_kubernetes() {
  local cmds=("$@"); ((${#cmds[@]})) || cmds=("${KUBE_CMDS[@]}")
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local date commit ldflags="" pkg
  date=$(proxy_info k8s.io/kubernetes "$KUBE_VERSION" Time)
  commit=$(proxy_info k8s.io/kubernetes "$KUBE_VERSION" Origin.Hash)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
    [[ -z $commit ]] || ldflags+=" -X $pkg.gitCommit=$commit"
  done
  local stamp="k8s.io/kubernetes@$KUBE_VERSION $ldflags" todo=() c
  for c in "${cmds[@]}"; do stamp_ok "$BIN/$c" "$stamp" || todo+=("$c"); done
  if ((${#todo[@]} == 0)); then log "Kubernetes $KUBE_VERSION (${cmds[*]}): cached"; return; fi
  log "building Kubernetes $KUBE_VERSION (${todo[*]}); ~10 min on 2 cores for all ${#KUBE_CMDS[@]}"
  local start=$SECONDS dir="$CACHE/src/kubernetes"
  local pkgs=("${todo[@]/#/k8s.io/kubernetes/cmd/}")
  wrapper_module "$dir" k8s.io/kubernetes "$KUBE_VERSION" "v0.${KUBE_VERSION#v1.}" "${pkgs[@]}"
  (cd "$dir" && go mod tidy && "${NICE[@]}" go build -trimpath -ldflags "-s -w$ldflags" -o "$BIN/" "${pkgs[@]}")
  for c in "${todo[@]}"; do stamp_set "$BIN/$c" "$stamp"; done
  local version
  case ${todo[0]} in
    kubectl) version=$("$BIN/kubectl" version --client | head -1) ;;
    kubeadm) version=$("$BIN/kubeadm" version -o short) ;;
    *) version=$("$BIN/${todo[0]}" --version) ;;
  esac
  log "Kubernetes (${todo[*]}) built in $((SECONDS - start))s: ${todo[0]} says $version"
}

build_etcd() {
  local commit ldflags stamp
  commit=$(proxy_info go.etcd.io/etcd/server/v3 "$ETCD_VERSION" Origin.Hash)
  ldflags=${commit:+"-X go.etcd.io/etcd/api/v3/version.GitSHA=${commit:0:9}"}
  stamp="go.etcd.io/etcd/server/v3@$ETCD_VERSION $ldflags"
  if stamp_ok "$BIN/etcd" "$stamp"; then log "etcd $ETCD_VERSION: cached"; return; fi
  log "building etcd $ETCD_VERSION"
  local start=$SECONDS dir="$CACHE/src/etcd"
  wrapper_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" go.etcd.io/etcd/server/v3
  (cd "$dir" && go mod tidy && "${NICE[@]}" go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  stamp_set "$BIN/etcd" "$stamp"
  log "etcd built in $((SECONDS - start))s"
}

build_prometheus_operator() {
  local v=${PROM_OPERATOR_VERSION#v} m=github.com/prometheus-operator/prometheus-operator
  local date commit p=github.com/prometheus/common/version ldflags stamp
  date=$(proxy_info "$m" "$PROM_OPERATOR_VERSION" Time)
  commit=$(proxy_info "$m" "$PROM_OPERATOR_VERSION" Origin.Hash)
  ldflags="-X $p.Version=$v -X $p.Revision=$commit -X $p.Branch=HEAD -X $p.BuildUser=mlstack-offline -X $p.BuildDate=$date"
  stamp="$m@$PROM_OPERATOR_VERSION $ldflags"
  if stamp_ok "$BIN/operator" "$stamp" && stamp_ok "$BIN/prometheus-config-reloader" "$stamp"; then
    log "Prometheus Operator $PROM_OPERATOR_VERSION: cached"; return
  fi
  log "building the Prometheus Operator $PROM_OPERATOR_VERSION and its config reloader"
  local start=$SECONDS dir="$CACHE/src/prometheus-operator"
  wrapper_module "$dir" "$m" "$PROM_OPERATOR_VERSION" "$PROM_OPERATOR_VERSION" "$m/cmd/operator" "$m/cmd/prometheus-config-reloader"
  # Hashes the checksum database lacks (see versions.sh); go verifies the download against them.
  printf '%s %s %s\n%s %s/go.mod %s\n' \
    "$m/pkg/client" "$PROM_OPERATOR_VERSION" "$PROM_OPERATOR_CLIENT_SUM" \
    "$m/pkg/client" "$PROM_OPERATOR_VERSION" "$PROM_OPERATOR_CLIENT_GOMOD_SUM" >"$dir/go.sum"
  (cd "$dir" && go mod tidy && "${NICE[@]}" go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/" "$m/cmd/operator" "$m/cmd/prometheus-config-reloader")
  stamp_set "$BIN/operator" "$stamp"
  stamp_set "$BIN/prometheus-config-reloader" "$stamp"
  log "Prometheus Operator built in $((SECONDS - start))s"
}

build_pause() {
  local src stamp="k8s.io/kubernetes@$KUBE_VERSION build/pause/linux/pause.c"
  if stamp_ok "$BIN/pause" "$stamp"; then log "pause: cached"; return; fi
  src=$(module_dir "k8s.io/kubernetes@$KUBE_VERSION")
  "${NICE[@]}" gcc -Os -Wall -Werror -static -DVERSION="v$KUBEADM_PAUSE_TAG-mlstack" -o "$BIN/pause" "$src/build/pause/linux/pause.c"
  stamp_set "$BIN/pause" "$stamp"
  log "pause built"
}

build_prometheus() {
  local p=github.com/prometheus/common/version m=github.com/prometheus/prometheus
  local ldflags="-X $p.Version=${PROMETHEUS_VERSION#v} -X $p.Branch=HEAD -X $p.BuildUser=mlstack-offline"
  # Only the service discovery ServiceMonitors and PodMonitors need (Kubernetes; static, file
  # and http are built in), which also halves the compile. No web UI assets (they need npm):
  # the API and /metrics work, the UI pages do not.
  local tags=netgo,remove_all_sd,enable_kubernetes_sd
  local stamp="$m@$PROMETHEUS_MODULE_VERSION $ldflags tags=$tags"
  if stamp_ok "$BIN/prometheus" "$stamp"; then log "Prometheus $PROMETHEUS_VERSION: cached"; return; fi
  log "building Prometheus $PROMETHEUS_VERSION ($m@$PROMETHEUS_MODULE_VERSION)"
  local start=$SECONDS dir="$CACHE/src/prometheus"
  wrapper_module "$dir" "$m" "$PROMETHEUS_MODULE_VERSION" "$PROMETHEUS_MODULE_VERSION" "$m/cmd/prometheus"
  (cd "$dir" && go mod tidy && "${NICE[@]}" go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$BIN/prometheus" "$m/cmd/prometheus")
  stamp_set "$BIN/prometheus" "$stamp"
  log "Prometheus built in $((SECONDS - start))s"
}

# The binaries asked for (all without arguments); a builder runs when any of its binaries is.
wanted=("$@")
((${#wanted[@]})) || wanted=("${BINARIES[@]}")
for b in "${wanted[@]}"; do
  [[ " ${BINARIES[*]} " == *" $b "* ]] || die "unknown binary $b (known: ${BINARIES[*]})"
done
want() { local b; for b; do [[ " ${wanted[*]} " == *" $b "* ]] && return 0; done; return 1; }
(($#)) && log "building only: ${wanted[*]}"
tools_start=$SECONDS

kube=()
for c in "${KUBE_CMDS[@]}"; do if want "$c"; then kube+=("$c"); fi; done

if want kind; then go_install_pinned kind sigs.k8s.io/kind "$KIND_VERSION"; fi
if want helm; then go_install_pinned helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"; fi
if want pause; then build_pause; fi
if ((${#kube[@]})); then build_kubernetes "${kube[@]}"; fi
if want etcd; then build_etcd; fi
if want coredns; then go_install_pinned coredns github.com/coredns/coredns "$COREDNS_VERSION"; fi
if want local-path-provisioner; then
  go_install_pinned local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION"
fi
if want metrics-server; then
  go_install_pinned metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION" \
    "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
fi
if want operator prometheus-config-reloader; then build_prometheus_operator; fi
if want prometheus; then build_prometheus; fi
if want kube-router; then
  kr=github.com/cloudnativelabs/kube-router/v2
  go_install_pinned kube-router "$kr/cmd/kube-router" "$KUBE_ROUTER_VERSION" \
    "-X $kr/pkg/version.Version=$KUBE_ROUTER_VERSION -X $kr/pkg/version.BuildDate=$(proxy_info "$kr" "$KUBE_ROUTER_VERSION" Time)"
fi
log "tools done in $((SECONDS - tools_start))s: $BIN"
