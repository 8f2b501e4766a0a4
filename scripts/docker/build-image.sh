#!/usr/bin/env bash
# Builds the sidecar image offline (--network=none) from the local stand-in base images, as the e2e test does.
#   scripts/docker/build-image.sh [TAG]     # default local/infisical-sidecar:dev
# Needs `npm ci` done on the host (the build bundles from node_modules) and the stand-ins (stand-ins.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tag=${1:-$IMG_SIDECAR}
[ -x "$REPO_ROOT/node_modules/.bin/esbuild" ] || die "node_modules missing: run npm ci first"
have_image "$IMG_NODE" && have_image "$IMG_DISTROLESS" || die "stand-in images missing: run scripts/docker/stand-ins.sh"
"$DOCKER" build -q --network=none \
  --build-arg BUILD_IMAGE="$IMG_NODE" --build-arg RUNTIME_IMAGE="$IMG_DISTROLESS" \
  --build-arg VERSION="$(node -p 'require(process.argv[1]).version' "$REPO_ROOT/package.json")" \
  --build-arg REVISION="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$tag" "$REPO_ROOT" >/dev/null
"$DOCKER" image prune -f --filter label=org.opencontainers.image.title=infisical-sidecar >/dev/null   # earlier builds
echo "$tag"
