#!/bin/sh
# Print each image's uncompressed size, as `docker image ls` counts it (decimal MB), and the
# inference image's against its target. Usage: hack/images/sizes.sh IMAGE...
set -eu
INFERENCE_TARGET_MB=350
for image in "$@"; do
  bytes="$(docker image inspect --format '{{.Size}}' "$image")"
  mb=$((bytes / 1000000))
  case "$image" in
    mlstack-inference:*|*/mlstack-inference:*)
      verdict="target <= ${INFERENCE_TARGET_MB} MB: $([ "$mb" -le "$INFERENCE_TARGET_MB" ] && echo met || echo MISSED)" ;;
    *) verdict="" ;;
  esac
  printf '%-48s %6d MB  %s\n' "$image" "$mb" "$verdict"
done
