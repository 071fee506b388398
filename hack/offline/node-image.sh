#!/bin/bash
# Phase 4: the kind node image, built offline (kind's own cannot be pulled, and
# `kind build node-image` pulls too), with every image of images.sh preloaded.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROOTFS_IMAGE=mlstack/kind-node-rootfs:$DEBIAN_SUITE
STAGE_IMAGE=mlstack/kind-node-stage:$KUBE_VERSION
CTX="$CACHE/images/node"
NODE_PACKAGES=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,fuse-overlayfs,e2fsprogs,ca-certificates,curl,jq,procps,conntrack,socat,ebtables,ipset

label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

# 1. The node's root file system: Debian with systemd, containerd 1.6, runc and CNI plugins.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
tarball="$CACHE/rootfs/kind-node-$DEBIAN_SUITE.tar"
mkdir -p "$CACHE/rootfs"
if ! stamp_ok "$tarball" "$DEBIAN_SUITE $mirror $NODE_PACKAGES"; then
  log "debootstrap of the node root file system ($DEBIAN_SUITE, ~2 min)"
  root="$CACHE/rootfs/kind-node-$DEBIAN_SUITE" start=$SECONDS
  rm -rf "$root" && mkdir -p "$root"
  "${NICE[@]}" debootstrap --variant=minbase --include="$NODE_PACKAGES" "$DEBIAN_SUITE" "$root" "$mirror" \
    >"$CACHE/logs/debootstrap-node.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball" .
  rm -rf "$root"
  stamp_set "$tarball" "$DEBIAN_SUITE $mirror $NODE_PACKAGES"
  log "node root file system in $((SECONDS - start))s"
fi
sum=$(sha256sum "$tarball" | cut -c1-16)
if [[ "$(label "$ROOTFS_IMAGE" mlstack.offline.inputs)" != "$sum" ]]; then
  log "importing $ROOTFS_IMAGE"
  docker import -c "LABEL mlstack.offline.inputs=$sum" "$tarball" "$ROOTFS_IMAGE" >/dev/null
fi

# 2. Staged image: kind's base-image files, Kubernetes binaries, manifests, static CNI.
kind_src=$(module_dir "sigs.k8s.io/kind@$KIND_VERSION")
rm -rf "$CTX" && mkdir -p "$CTX/kube"
cp -r "$OFFLINE_DIR/images/node/." "$CTX/"
cp -r "$kind_src/images/base/files" "$CTX/kind-files"
chmod -R u+w "$CTX"
for c in kubelet kubeadm kubectl; do ln -f "$BIN/$c" "$CTX/kube/"; done
# kind's storage manifest is a Go string in the kind module: cut it out as kind does at build.
storage_consts="$kind_src/pkg/build/nodeimage/const_storage.go"
provisioner_image=$(sed -n 's/^const storageProvisionerImage = "\(.*\)"/\1/p' "$storage_consts")
helper_image=$(sed -n 's/^const storageHelperImage = "\(.*\)"/\1/p' "$storage_consts")
awk '/^const defaultStorageManifest = `/ {on = 1; next} on && /^`/ {exit} on {print}' "$storage_consts" |
  sed -e "s|\` + storageProvisionerImage + \`|$provisioner_image|; s|\` + storageHelperImage + \`|$helper_image|" \
    >"$CTX/default-storage.yaml"
grep -q "provisioner: rancher.io/local-path" "$CTX/default-storage.yaml" || die "could not extract kind's storage manifest"
grep -q '` +' "$CTX/default-storage.yaml" && die "unresolved constant in kind's storage manifest"

preload=$(cat "$CACHE/preload-images.txt")
# The node image is up to date when the stage inputs and every preloaded image are unchanged.
stage_inputs=$( (cd "$CTX" && find . -type f -print0 | sort -z | xargs -0 sha256sum
  docker image inspect -f '{{.Id}}' "$ROOTFS_IMAGE" $preload) | sha256sum | cut -c1-16)
if [[ "$(label "$NODE_IMAGE" mlstack.offline.inputs)" == "$stage_inputs" ]]; then
  log "node image $NODE_IMAGE: up to date"
  exit 0
fi
log "building the staged node image"
docker_build --build-arg "BASE=$ROOTFS_IMAGE" --build-arg "KUBE_VERSION=$KUBE_VERSION" \
  -t "$STAGE_IMAGE" "$CTX" >/dev/null

# 3. Preload: import every image into the node's containerd, then commit.
builder=mlstack-node-preload-$$
cleanup() { docker rm -f "$builder" >/dev/null 2>&1 || true; }
trap cleanup EXIT
docker run -d --name "$builder" --privileged --entrypoint sleep "$STAGE_IMAGE" infinity >/dev/null
docker exec -d "$builder" sh -c 'containerd >/var/log/preload-containerd.log 2>&1 & echo $! >/run/preload-containerd.pid; wait'
wait_for "containerd in the preload container" 60 docker exec "$builder" ctr version
log "importing $(wc -w <<<"$preload") images into the node's containerd"
# shellcheck disable=SC2086
docker save $preload | docker exec -i "$builder" ctr --namespace=k8s.io images import \
  --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
imported=$(docker exec "$builder" ctr --namespace=k8s.io images ls -q)
missing=0
for image in $preload; do
  [[ ${image%%/*} == *.* ]] || image=docker.io/$image
  grep -qxF "$image" <<<"$imported" || { log "not imported: $image"; missing=1; }
done
((missing == 0)) || die "preload incomplete"
docker exec "$builder" sh -c 'kill $(cat /run/preload-containerd.pid); rm -f /run/preload-containerd.pid /var/log/preload-containerd.log'
wait_for "containerd in the preload container to stop" 30 bash -c "! docker exec $builder pgrep -x containerd"
docker commit \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
  "$builder" "$NODE_IMAGE-committed" >/dev/null
# docker 20.10's commit cannot set STOPSIGNAL; systemd in the node wants SIGRTMIN+3.
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL mlstack.offline.inputs=%s\n' "$NODE_IMAGE-committed" "$stage_inputs" |
  docker_build -t "$NODE_IMAGE" -
cleanup
docker rmi "$NODE_IMAGE-committed" "$STAGE_IMAGE" >/dev/null
log "node image $NODE_IMAGE: $(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | numfmt --to=iec)"
