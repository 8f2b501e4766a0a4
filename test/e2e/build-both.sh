#!/usr/bin/env bash
# e2e step (issue 14): `docker build` works on a fresh clone both ways, and both ways give the same image.
#   test/e2e/build-both.sh          # scenario 15-fresh-clone-build; needs dockerd and the stand-ins (stand-ins.sh)
#
# 1. `git clone` of the repository into a temp directory (so only committed files take part).
# 2. Offline: the host's node_modules (its `npm ci` of the same lock file) in the clone, then
#    scripts/docker/build.sh --deps host --network=none. This is the path the rest of the e2e depends on.
# 3. Online: scripts/docker/build.sh --deps registry, `npm ci` inside the build. Containers here reach the npm
#    registry only through a TLS-intercepting proxy, so the host's CA bundle goes in as the build secret
#    npm_ca: the very case the secret exists for. A failure here is reported as the registry's (the offline
#    path has passed by then) and fails only this step.
# 4. The two images' /app trees are byte-identical, and so are their cache-dir mount points
#    (/var/cache/infisical-sidecar, 65532:65532 0700, in a root-owned /var/cache).
# 5. The online image holds no CA and no npm cache: `docker history --no-trunc` names neither, and the layers
#    the build adds over the runtime base hold only /app and the cache-dir mount point.
#
# Uses its own image tags (local/infisical-sidecar:build-offline, :build-online) and removes them on exit.
# Env: BUILD_BOTH_SOURCE=DIR clones DIR instead of this repository; BUILD_BOTH_CA=FILE is the CA bundle
# (default: the system bundle of this Debian host); BUILD_BOTH_KEEP=1 keeps the images and the work directory.
set -euo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$E2E/../../scripts/docker/lib.sh"

SOURCE=${BUILD_BOTH_SOURCE:-$REPO_ROOT}
CA=${BUILD_BOTH_CA:-/etc/ssl/certs/ca-certificates.crt}
IMG_OFFLINE=local/infisical-sidecar:build-offline
IMG_ONLINE=local/infisical-sidecar:build-online
# The official node images carry npm; the node stand-in (stand-ins.sh) has only node, so npm is added here.
IMG_NODE_NPM=local/node-npm:${NODE_MAJOR}-bookworm-slim
CACHE_DIR=/var/cache/infisical-sidecar
COMPILE_CACHE_DIR=/var/cache/node-compile-cache
PASSED=0
WORK=$(mktemp -d /tmp/build-both.XXXXXX)
cleanup() {
  [ "${BUILD_BOTH_KEEP:-0}" = 1 ] && { say "kept $WORK, $IMG_OFFLINE, $IMG_ONLINE"; return; }
  "$DOCKER" rmi -f "$IMG_OFFLINE" "$IMG_ONLINE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ok() { PASSED=$((PASSED + 1)); say "   ok  $*"; }
fail() { say "   FAIL $*"; echo "build-both: $PASSED passed, 1 failed"; exit 1; }

have_image "$IMG_NODE" && have_image "$IMG_DISTROLESS" || die "stand-in images missing: run scripts/docker/stand-ins.sh"
bases=(--build-arg RUNTIME_IMAGE="$IMG_DISTROLESS")

say "== fresh clone of $SOURCE"
git clone -q "$SOURCE" "$WORK/clone"
[ ! -e "$WORK/clone/node_modules" ] || fail "the clone has node_modules"
CLONE_BUILD=$WORK/clone/scripts/docker/build.sh

say "== offline: the host's node_modules (its npm ci), build with --network=none"
[ -e "$REPO_ROOT/node_modules/.bin/esbuild" ] || fail "no node_modules in $REPO_ROOT (run npm ci first)"
# Hard links when /tmp and the repository share a file system: nothing is copied, and removing them below
# leaves the host's node_modules as they are.
timed "node_modules into the clone" cp -al "$REPO_ROOT/node_modules" "$WORK/clone/node_modules" 2>/dev/null \
  || timed "node_modules into the clone (copy)" cp -a "$REPO_ROOT/node_modules" "$WORK/clone/node_modules"
timed "build --deps host --network=none" env REPO_ROOT= "$CLONE_BUILD" --deps host -q --network=none \
  --build-arg BUILD_IMAGE="$IMG_NODE" "${bases[@]}" -t "$IMG_OFFLINE" >/dev/null || fail "offline build"
ok "offline build: $IMG_OFFLINE"

# The online build must not see the host's node_modules: it installs from the lock file, as a clone without
# them would; removing them also proves nothing of the host's is needed.
rm -rf "$WORK/clone/node_modules"

say "== online: npm ci inside the build, the CA only as the secret npm_ca"
[ -s "$CA" ] || fail "no CA bundle at $CA"
npm_root=$(npm root -g)/npm
npm_version=$(node -p 'require(process.argv[1]).version' "$npm_root/package.json")
if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "host.npm.version"}}' "$IMG_NODE_NPM" 2>/dev/null)" != "$npm_version" ]; then
  mkdir -p "$WORK/node-npm" && cp -a "$npm_root" "$WORK/node-npm/npm"
  printf '%s\n' "FROM $IMG_NODE" "COPY npm /usr/local/lib/node_modules/npm" \
    "RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && npm --version" \
    "LABEL host.npm.version=$npm_version" >"$WORK/node-npm/Dockerfile"
  timed "docker build $IMG_NODE_NPM" "$DOCKER" build -q --network=none -t "$IMG_NODE_NPM" "$WORK/node-npm" >/dev/null \
    || fail "building $IMG_NODE_NPM"
fi
if ! timed "build --deps registry --secret npm_ca" env REPO_ROOT= "$CLONE_BUILD" --deps registry --npm-ca "$CA" --progress=plain \
    --build-arg BUILD_IMAGE="$IMG_NODE_NPM" "${bases[@]}" -t "$IMG_ONLINE" >"$WORK/online.log" 2>&1; then
  tail -25 "$WORK/online.log" >&2
  fail "online build (npm ci from the registry inside the build) failed: most likely the npm registry or the \
proxy in front of it did not answer; the offline build above passed, and the rest of the e2e uses that one"
fi
grep -q 'npm ci' "$WORK/online.log" || fail "the online build did not run npm ci"
ok "online build: $IMG_ONLINE"

say "== the two images are the same program"
image_tree() { # image_tree IMAGE DIR: /app and the cache dir's metadata, copied out of the image
  local c; c=$("$DOCKER" create "$1")
  mkdir -p "$2"
  "$DOCKER" cp "$c:/app/." "$2/app/"
  "$DOCKER" rm "$c" >/dev/null
  "$DOCKER" run --rm --network=none --entrypoint node "$1" -e \
    "const fs = require('fs'), s = fs.statSync('$CACHE_DIR'), p = fs.statSync('$CACHE_DIR/..');
     console.log(s.uid + ':' + s.gid, (s.mode & 0o7777).toString(8), s.isDirectory(), 'parent ' + p.uid + ':' + p.gid)" \
    >"$2/cache-dir"
}
image_tree "$IMG_OFFLINE" "$WORK/offline"
image_tree "$IMG_ONLINE" "$WORK/online"
diff -r "$WORK/offline/app" "$WORK/online/app" >&2 || fail "the bundles differ"
files=$(find "$WORK/online/app" -type f | wc -l)
[ "$files" -ge 2 ] && [ -s "$WORK/online/app/main.js" ] || fail "no bundle in $IMG_ONLINE:/app"
ok "/app identical ($files files, sha256 of main.js $(sha256sum "$WORK/online/app/main.js" | cut -c1-16))"
[ "$(cat "$WORK/offline/cache-dir")" = "65532:65532 700 true parent 0:0" ] || fail "$CACHE_DIR in $IMG_OFFLINE: $(cat "$WORK/offline/cache-dir")"
cmp -s "$WORK/offline/cache-dir" "$WORK/online/cache-dir" || fail "$CACHE_DIR differs: $(cat "$WORK/online/cache-dir")"
ok "$CACHE_DIR: 65532:65532 0700 in both, its parent root's"
for image in "$IMG_OFFLINE" "$IMG_ONLINE"; do
  "$DOCKER" run --rm --network=none "$image" help >/dev/null || fail "$image help"
done
ok "help runs in both"

say "== no CA and no npm cache in the online image"
"$DOCKER" history --no-trunc --format '{{.CreatedBy}}' "$IMG_ONLINE" >"$WORK/history"
! grep -Ein 'CERTIFICATE|npm_ca|NODE_EXTRA_CA_CERTS|/root/\.npm|_cacache|npm ci' "$WORK/history" >&2 \
  || fail "docker history of $IMG_ONLINE names the CA or npm"
# The layers this build adds on top of the runtime base, and every path in them.
base_layers=$("$DOCKER" image inspect -f '{{len .RootFS.Layers}}' "$IMG_DISTROLESS")
mkdir -p "$WORK/save" && "$DOCKER" save "$IMG_ONLINE" | tar -x -C "$WORK/save"
node -e 'for (const l of JSON.parse(require("fs").readFileSync(process.argv[1]))[0].Layers.slice(+process.argv[2])) console.log(l)' \
  "$WORK/save/manifest.json" "$base_layers" >"$WORK/own-layers"
[ -s "$WORK/own-layers" ] || fail "found no layer of the build's own over $IMG_DISTROLESS"
while read -r layer; do tar -tf "$WORK/save/$layer"; done <"$WORK/own-layers" | sed 's#/$##' | sort -u >"$WORK/own-paths"
# The RUN that fills the V8 compile cache (issue 19) adds that cache and the bare mount points a RUN leaves
# (dev, etc, proc, sys: directories only, nothing in them).
grep -Ev "^(app|app/.*|var|var/cache|${CACHE_DIR#/}|${COMPILE_CACHE_DIR#/}|${COMPILE_CACHE_DIR#/}/.*|dev|etc|proc|sys)$" "$WORK/own-paths" >&2 \
  && fail "the build's own layers hold paths other than /app, $CACHE_DIR and $COMPILE_CACHE_DIR (above)"
ok "history names no CA, no npm; the $(wc -l <"$WORK/own-layers") added layers hold only /app, $CACHE_DIR and $COMPILE_CACHE_DIR ($(wc -l <"$WORK/own-paths") paths)"

echo "build-both: $PASSED passed, 0 failed"
