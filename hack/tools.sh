#!/usr/bin/env bash
# Build the pinned Go tools into the git-ignored .cache/bin.
# A tool is rebuilt only when its binary is missing or its pin changed (a stamp file records the
# pin each binary was built from). Usage: hack/tools.sh [TOOL...]   (default: every tool below)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${TOOLS_BIN:-$PWD/.cache/bin}"

declare -A PINS=(
  [helm]="helm.sh/helm/v3/cmd/helm@v3.22.0"
  [kubeconform]="github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0"
  [helm-docs]="github.com/norwoodj/helm-docs/cmd/helm-docs@v1.14.2"
  [kind]="sigs.k8s.io/kind@v0.33.0"
  [actionlint]="github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
)

# Link-time settings the projects' own release builds use. helm's default Kubernetes version
# (for `helm template` and lint's deprecation checks) is that of its client-go, v0.37 → 1.37.
declare -A LDFLAGS=(
  [helm]="-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0
    -X helm.sh/helm/v3/internal/version.gitTreeState=clean
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37"
)

if [[ $# -eq 0 ]]; then
  set -- "${!PINS[@]}"
fi

mkdir -p "$BIN"
for tool in "$@"; do
  pin="${PINS[$tool]:-}"
  if [[ -z "$pin" ]]; then
    echo "hack/tools.sh: unknown tool '$tool' (known: ${!PINS[*]})" >&2
    exit 2
  fi
  ldflags="$(echo ${LDFLAGS[$tool]:-"-s -w"})"  # one line
  stamp="$BIN/.$tool.pin"
  if [[ -x "$BIN/$tool" && -f "$stamp" && "$(cat "$stamp")" == "$pin $ldflags" ]]; then
    continue
  fi
  command -v go >/dev/null || { echo "hack/tools.sh: go is needed to build $tool" >&2; exit 1; }
  echo "building $tool from $pin (helm takes a few minutes on a cold cache)"
  GOBIN="$BIN" GOFLAGS="${GOFLAGS:--buildvcs=false}" \
    nice -n 19 go install -trimpath -ldflags "$ldflags" "$pin"
  echo "$pin $ldflags" >"$stamp"
done
