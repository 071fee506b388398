#!/usr/bin/env bash
# What the chart checks need beyond the Python environment, installed only when missing:
# promtool (Debian's prometheus package) and the pinned Go tools (helm, kubeconform, helm-docs).
# Building the Go tools needs a Go toolchain (1.24 or newer) on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing promtool (Debian package prometheus)"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends prometheus >/dev/null
fi
hack/tools.sh helm kubeconform helm-docs
