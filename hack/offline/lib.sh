# shellcheck shell=bash
# Shared by the hack/offline scripts: paths, logging, bounded waits, cached Go builds.

OFFLINE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$OFFLINE_DIR/../.." && pwd)"
# shellcheck source=versions.sh
source "$OFFLINE_DIR/versions.sh"

# Everything built lives here (git-ignored through .cache/); delete it for a cold run.
CACHE="${OFFLINE_CACHE:-$REPO_ROOT/.cache/offline}"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/logs"
export PATH="$BIN:$PATH"

# Go builds use their own module and build caches under $CACHE, niced for shared machines.
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
export GOFLAGS="-modcacherw -buildvcs=false -p=2" GOTOOLCHAIN=local CGO_ENABLED=0
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
NICE=(nice -n 19)

CLUSTER_NAME="${CLUSTER_NAME:-}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: retry COMMAND every 2 s until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  log "waiting up to ${timeout}s for $what"
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "gave up after ${timeout}s waiting for $what; last attempt:"
      "$@" >&2 || true
      return 1
    fi
    sleep 2
  done
  log "ok: $what"
}

# stamp_ok FILE VALUE: true when FILE exists next to its stamp holding VALUE.
stamp_ok() { [[ -e $1 && -f $1.stamp && "$(cat "$1.stamp")" == "$2" ]]; }
stamp_set() { printf '%s\n' "$2" >"$1.stamp"; }

# go_install_pinned NAME MODULE_PKG VERSION [LDFLAGS]: `go install` into $BIN unless stamped
# with the same pin.
go_install_pinned() {
  local name=$1 pkg=$2 version=$3 ldflags=${4:-}
  local stamp="$pkg@$version $ldflags"
  if stamp_ok "$BIN/$name" "$stamp"; then
    log "$name $version: cached"; return
  fi
  log "building $name from $pkg@$version"
  local start=$SECONDS
  GOBIN="$BIN" "${NICE[@]}" go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version"
  stamp_set "$BIN/$name" "$stamp"
  log "$name built in $((SECONDS - start))s"
}

# docker_build ARGS...: a niced classic `docker build`, its output shown only when it fails
# (docker 20.10 has no buildx, so Dockerfiles here avoid BuildKit-only syntax).
docker_build() {
  local out
  if ! out=$("${NICE[@]}" docker build -q "$@" 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
}

# module_dir MODULE@VERSION: download a module (verified against the checksum database) and
# print its directory in the module cache.
module_dir() { go mod download -json "$1" | jq -er .Dir; }
module_field() { go mod download -json "$1" | jq -er "$2"; }

# kind_config: the user-facing kind config when present, else a default naming the cluster.
kind_config() {
  local cfg="${KIND_CONFIG:-$REPO_ROOT/kind-config.yaml}"
  if [[ -f $cfg ]]; then
    printf '%s\n' "$cfg"
    return
  fi
  cfg="$CACHE/kind-config.default.yaml"
  cat >"$cfg" <<'YAML'
# Used by hack/offline only while the repository has no kind-config.yaml.
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: mlstack
nodes:
  - role: control-plane
YAML
  printf '%s\n' "$cfg"
}

# cluster_name: the name from the kind config (CLUSTER_NAME overrides), default mlstack.
cluster_name() {
  if [[ -n $CLUSTER_NAME ]]; then printf '%s\n' "$CLUSTER_NAME"; return; fi
  local name
  name=$(sed -n 's/^name:[[:space:]]*["'\'']\{0,1\}\([A-Za-z0-9._-]*\).*/\1/p' "$(kind_config)" | head -1)
  printf '%s\n' "${name:-mlstack}"
}

# render FILE: FILE with each ${NAME} replaced by the exported variable NAME (unset is an error).
render() {
  perl -pe 's/\$\{(\w+)\}/defined $ENV{$1} ? $ENV{$1} : die "render: \${$1} is not set\n"/ge' "$1"
}

kube_context() { printf 'kind-%s\n' "$(cluster_name)"; }
kctl() { kubectl --context "$(kube_context)" "$@"; }
