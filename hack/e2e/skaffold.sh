#!/usr/bin/env bash
# Build skaffold from the Go module proxy into .cache/bin (rebuilt only when the pin changes).
# Its go.mod has replace lines, so `go install` refuses it: build inside a copy of the module.
set -euo pipefail
# v2.24.0 reads skaffold/v4beta14; v2.16.1 refuses it, and v2.17-v2.20 are not on the
# module mirror.
SKAFFOLD_VERSION=v2.24.0
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/.cache/bin"
stamp="$bin/skaffold.stamp"
mkdir -p "$bin"
if [[ -x "$bin/skaffold" && "$(cat "$stamp" 2>/dev/null)" == "$SKAFFOLD_VERSION" ]]; then
  exit 0
fi
echo "building skaffold $SKAFFOLD_VERSION (several minutes on 2 cores)"
dir="$(go mod download -json "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$dir" ]] || { echo "skaffold module download failed" >&2; exit 1; }
work="$(mktemp -d)"
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
(cd "$work" && CGO_ENABLED=0 nice -n 5 go build -trimpath -ldflags "-s -w \
  -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION" \
  -o "$bin/skaffold" ./cmd/skaffold)
echo "$SKAFFOLD_VERSION" > "$stamp"
"$bin/skaffold" version
