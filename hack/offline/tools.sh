#!/bin/bash
# Phase 2: every binary, built from the Go module proxy at the pins in versions.sh into
# $CACHE/bin. A binary is rebuilt only when missing or when its pin (stamp) changes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# proxy_info MODULE VERSION FIELD: a field of the proxy's .info (Time, Origin.Hash), or "".
proxy_info() {
  curl -fsS --max-time 30 "${GOPROXY%%,*}/$1/@v/$2.info" 2>/dev/null | jq -r ".$3 // empty" || true
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

build_kubernetes() {
  local cmds=(kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local date commit ldflags="" pkg
  date=$(proxy_info k8s.io/kubernetes "$KUBE_VERSION" Time)
  commit=$(proxy_info k8s.io/kubernetes "$KUBE_VERSION" Origin.Hash)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
    [[ -z $commit ]] || ldflags+=" -X $pkg.gitCommit=$commit"
  done
  local stamp="k8s.io/kubernetes@$KUBE_VERSION $ldflags" all=1 c
  for c in "${cmds[@]}"; do stamp_ok "$BIN/$c" "$stamp" || all=0; done
  if ((all)); then log "Kubernetes $KUBE_VERSION: cached"; return; fi
  log "building Kubernetes $KUBE_VERSION (${cmds[*]}); ~10 min on 2 cores"
  local start=$SECONDS dir="$CACHE/src/kubernetes"
  local pkgs=("${cmds[@]/#/k8s.io/kubernetes/cmd/}")
  wrapper_module "$dir" k8s.io/kubernetes "$KUBE_VERSION" "v0.${KUBE_VERSION#v1.}" "${pkgs[@]}"
  (cd "$dir" && go mod tidy && "${NICE[@]}" go build -trimpath -ldflags "-s -w$ldflags" -o "$BIN/" "${pkgs[@]}")
  for c in "${cmds[@]}"; do stamp_set "$BIN/$c" "$stamp"; done
  log "Kubernetes built in $((SECONDS - start))s: $("$BIN/kubectl" version --client | head -1)"
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

go_install_pinned kind sigs.k8s.io/kind "$KIND_VERSION"
go_install_pinned helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
build_pause
build_kubernetes
build_etcd
go_install_pinned coredns github.com/coredns/coredns "$COREDNS_VERSION"
go_install_pinned local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION"
go_install_pinned metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION" \
  "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
build_prometheus_operator
build_prometheus
