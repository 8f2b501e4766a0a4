#!/usr/bin/env bash
# The one build command of the image, shared by the e2e test (test/e2e/build-both.sh) and the release workflow
# (.github/workflows/release.yml), so that what the tests build is what gets published.
#
#   scripts/docker/build.sh [--deps registry|host] [--npm-ca FILE] [docker build options...]
#   scripts/docker/build.sh --print-build-args    # KEY=VALUE lines, for docker/build-push-action's build-args
#
# --deps registry (default): `npm ci` from package-lock.json inside the build; --deps host: the host's
# node_modules (run `npm ci` first; works with --network=none). --npm-ca FILE: a CA bundle for a
# TLS-intercepting proxy, passed as the BuildKit secret `npm_ca` (never a build arg, never in a layer).
# The labels' build args are fixed by the commit, so two builds of one commit differ in nothing:
# VERSION ($VERSION, else package.json's), REVISION (HEAD), CREATED (HEAD's commit time).
# The builder is $DOCKER_BUILD: `docker build` with BuildKit by default; the workflow uses `docker buildx build`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_args() {
  echo "VERSION=${VERSION:-$(node -p 'require(process.argv[1]).version' "$REPO_ROOT/package.json")}"
  echo "REVISION=$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "CREATED=$(git -C "$REPO_ROOT" log -1 --format=%cI 2>/dev/null || echo unknown)"
}

deps=registry
docker_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --print-build-args) build_args; exit 0 ;;
    --deps) deps=$2; shift 2 ;;
    --npm-ca) [ -r "$2" ] || die "--npm-ca $2: not a readable file"
              docker_args+=(--secret "id=npm_ca,src=$2"); shift 2 ;;
    *) docker_args+=("$1"); shift ;;
  esac
done
case "$deps" in
  registry) ;;
  host) [ -e "$REPO_ROOT/node_modules/.bin/esbuild" ] || die "--deps host: no node_modules (run npm ci first)" ;;
  *) die "--deps $deps: expected registry or host" ;;
esac

while IFS= read -r arg; do docker_args+=(--build-arg "$arg"); done < <(build_args)
read -r -a builder <<<"${DOCKER_BUILD:-$DOCKER build}"
exec "${builder[@]}" --build-arg DEPS="$deps" "${docker_args[@]}" "$REPO_ROOT"
