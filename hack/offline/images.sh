#!/bin/bash
# Phase 3: every container image, built locally and tagged with the exact name that kubeadm,
# kind's storage manifest and our manifests ask for. An image is rebuilt when missing or when
# the hash of its inputs (build context + base image) differs from its label.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DEBIAN_IMAGE=mlstack/debian:$DEBIAN_SUITE
K8S_BASE_IMAGE=mlstack/k8s-base:$DEBIAN_SUITE
CTX="$CACHE/images"

debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# build_image TAG CONTEXT_DIR [BUILD_ARG...]: docker build unless the inputs label matches.
build_image() {
  local tag=$1 dir=$2; shift 2
  local inputs base="" arg
  for arg in "$@"; do
    [[ $arg == BASE=* ]] && base=$(docker image inspect -f '{{.Id}}' "${arg#BASE=}")
  done
  inputs=$( (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum; printf '%s\n' "$base" "$@") | sha256sum | cut -c1-16)
  if [[ "$(docker image inspect -f '{{index .Config.Labels "mlstack.offline.inputs"}}' "$tag" 2>/dev/null)" == "$inputs" ]]; then
    log "image $tag: up to date"; return
  fi
  log "building image $tag"
  local build_args=()
  for arg in "$@"; do build_args+=(--build-arg "$arg"); done
  docker_build --label "mlstack.offline.inputs=$inputs" "${build_args[@]}" -t "$tag" "$dir"
}

# binary_image TAG BASE BINARY PATH_IN_IMAGE [ENTRYPOINT_JSON] [USER]: one binary on a base.
binary_image() {
  local tag=$1 base=$2 binary=$3 dest=$4 entrypoint=${5:-} user=${6:-}
  local dir
  dir="$CTX/$(basename "$binary")"
  mkdir -p "$dir"
  ln -f "$BIN/$binary" "$dir/$(basename "$binary")"  # a hard link: no second copy on disk
  {
    printf 'ARG BASE\nFROM ${BASE}\nCOPY %s %s\n' "$(basename "$binary")" "$dest"
    [[ -z $user ]] || printf 'USER %s\n' "$user"
    [[ -z $entrypoint ]] || printf 'ENTRYPOINT %s\n' "$entrypoint"
  } >"$dir/Dockerfile"
  build_image "$tag" "$dir" "BASE=$base"
}

# Base: a minimal Debian made by debootstrap (no image can be pulled).
debian_base() {
  local tarball="$CACHE/rootfs/debian-$DEBIAN_SUITE.tar" mirror
  mirror=$(debian_mirror)
  if ! stamp_ok "$tarball" "$DEBIAN_SUITE $mirror"; then
    log "debootstrap --variant=minbase $DEBIAN_SUITE from $mirror"
    local root="$CACHE/rootfs/debian-$DEBIAN_SUITE" start=$SECONDS
    rm -rf "$root" && mkdir -p "$root"
    "${NICE[@]}" debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$mirror" >"$CACHE/logs/debootstrap-base.log"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball" .
    rm -rf "$root"
    stamp_set "$tarball" "$DEBIAN_SUITE $mirror"
    log "debootstrap done in $((SECONDS - start))s"
  fi
  local sum
  sum=$(sha256sum "$tarball" | cut -c1-16)
  if [[ "$(docker image inspect -f '{{index .Config.Labels "mlstack.offline.inputs"}}' "$DEBIAN_IMAGE" 2>/dev/null)" != "$sum" ]]; then
    log "importing $DEBIAN_IMAGE"
    docker import -c "LABEL mlstack.offline.inputs=$sum" -c 'CMD ["bash"]' "$tarball" "$DEBIAN_IMAGE" >/dev/null
  else
    log "image $DEBIAN_IMAGE: up to date"
  fi
}

# Laid out like the upstream image: /bin/prometheus, data in /prometheus, user nobody.
prometheus_context() {
  local dir="$CTX/prometheus"
  rm -rf "$dir" && mkdir -p "$dir" && ln -f "$BIN/prometheus" "$dir/"
  cat >"$dir/Dockerfile" <<'DOCKERFILE'
ARG BASE
FROM ${BASE}
COPY prometheus /bin/prometheus
RUN mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus /etc/prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
  printf '%s\n' "$dir"
}

extra_ca() {
  local dir="$CTX/python-base"
  rm -rf "$dir" && cp -r "$OFFLINE_DIR/images/python-base" "$dir" && mkdir -p "$dir/extra-ca"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$dir/extra-ca/"
  fi
}

mkdir -p "$CTX" "$CACHE/rootfs"
debian_base
if [[ ${1:-} == python-base ]]; then  # only the base image of the project's Dockerfile
  extra_ca
  build_image "$PYTHON_BASE_IMAGE" "$CTX/python-base" "BASE=$DEBIAN_IMAGE"
  log "Python base image: $PYTHON_BASE_IMAGE"
  exit 0
fi
build_image "$K8S_BASE_IMAGE" "$OFFLINE_DIR/images/k8s-base" "BASE=$DEBIAN_IMAGE"

for c in kube-apiserver kube-controller-manager kube-scheduler; do
  binary_image "registry.k8s.io/$c:$KUBE_VERSION" "$DEBIAN_IMAGE" "$c" /usr/local/bin/
done
binary_image "registry.k8s.io/kube-proxy:$KUBE_VERSION" "$K8S_BASE_IMAGE" kube-proxy /usr/local/bin/
binary_image "registry.k8s.io/etcd:$KUBEADM_ETCD_TAG" "$DEBIAN_IMAGE" etcd /usr/local/bin/
binary_image "registry.k8s.io/coredns/coredns:$KUBEADM_COREDNS_TAG" "$DEBIAN_IMAGE" coredns /coredns '["/coredns"]'
mkdir -p "$CTX/pause" && ln -f "$BIN/pause" "$CTX/pause/pause"
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$CTX/pause/Dockerfile"
build_image "registry.k8s.io/pause:$KUBEADM_PAUSE_TAG" "$CTX/pause"

# kind's storage manifest names these two images (their tags come from the kind module).
kind_src=$(module_dir "sigs.k8s.io/kind@$KIND_VERSION")
storage_consts="$kind_src/pkg/build/nodeimage/const_storage.go"
provisioner_image=$(sed -n 's/^const storageProvisionerImage = "\(.*\)"/\1/p' "$storage_consts")
helper_image=$(sed -n 's/^const storageHelperImage = "\(.*\)"/\1/p' "$storage_consts")
[[ -n $provisioner_image && -n $helper_image ]] || die "storage image names not found in $storage_consts"
binary_image "$provisioner_image" "$DEBIAN_IMAGE" local-path-provisioner /usr/local/bin/
docker tag "$DEBIAN_IMAGE" "$helper_image"

binary_image "registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION" "$DEBIAN_IMAGE" \
  metrics-server /metrics-server '["/metrics-server"]' 65534
binary_image "quay.io/prometheus-operator/prometheus-operator:$PROM_OPERATOR_VERSION" "$DEBIAN_IMAGE" \
  operator /bin/operator '["/bin/operator"]' 65534
binary_image "quay.io/prometheus-operator/prometheus-config-reloader:$PROM_OPERATOR_VERSION" "$DEBIAN_IMAGE" \
  prometheus-config-reloader /bin/prometheus-config-reloader '["/bin/prometheus-config-reloader"]' 65534
build_image "quay.io/prometheus/prometheus:$PROMETHEUS_VERSION" "$(prometheus_context)" "BASE=$DEBIAN_IMAGE"
# kube-router's firewall runs iptables and ipset: the kube-proxy base has both, set to the
# legacy backend kube-proxy writes to, so both take the same lock and see each other's rules.
binary_image "$KUBE_ROUTER_IMAGE" "$K8S_BASE_IMAGE" kube-router /usr/local/bin/ '["/usr/local/bin/kube-router"]'

extra_ca
build_image "$PYTHON_BASE_IMAGE" "$CTX/python-base" "BASE=$DEBIAN_IMAGE"
log "Python base image for the project's Dockerfile: $PYTHON_BASE_IMAGE ($(docker run --rm "$PYTHON_BASE_IMAGE" python --version))"

# Everything the node image preloads, one per line, for node-image.sh.
cat >"$CACHE/preload-images.txt" <<LIST
registry.k8s.io/kube-apiserver:$KUBE_VERSION
registry.k8s.io/kube-controller-manager:$KUBE_VERSION
registry.k8s.io/kube-scheduler:$KUBE_VERSION
registry.k8s.io/kube-proxy:$KUBE_VERSION
registry.k8s.io/etcd:$KUBEADM_ETCD_TAG
registry.k8s.io/coredns/coredns:$KUBEADM_COREDNS_TAG
registry.k8s.io/pause:$KUBEADM_PAUSE_TAG
$provisioner_image
$helper_image
registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION
quay.io/prometheus-operator/prometheus-operator:$PROM_OPERATOR_VERSION
quay.io/prometheus-operator/prometheus-config-reloader:$PROM_OPERATOR_VERSION
quay.io/prometheus/prometheus:$PROMETHEUS_VERSION
$KUBE_ROUTER_IMAGE
LIST
log "images ready: $(wc -l <"$CACHE/preload-images.txt") to preload"
