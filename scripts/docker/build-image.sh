#!/usr/bin/env bash
# Builds the sidecar image offline (--network=none) from the local stand-in base images, as the e2e test does.
#   scripts/docker/build-image.sh [TAG]     # default local/infisical-sidecar:dev
# Needs `npm ci` done on the host (the build bundles from node_modules) and the stand-ins (stand-ins.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tag=${1:-$IMG_SIDECAR}
[ -x "$REPO_ROOT/node_modules/.bin/esbuild" ] || die "node_modules missing: run npm ci first"
have_image "$IMG_NODE" && have_image "$IMG_DISTROLESS" || die "stand-in images missing: run scripts/docker/stand-ins.sh"
"$REPO_ROOT/scripts/docker/build.sh" --deps host -q --network=none \
  --build-arg BUILD_IMAGE="$IMG_NODE" --build-arg RUNTIME_IMAGE="$IMG_DISTROLESS" -t "$tag" >/dev/null
"$DOCKER" image prune -f --filter label=org.opencontainers.image.title=infisical-sidecar >/dev/null   # earlier builds
echo "$tag"
