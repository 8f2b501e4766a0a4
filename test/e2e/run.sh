#!/usr/bin/env bash
# Docker end-to-end test (`npm run test:e2e`): prepares once what every scenario shares (packages, dockerd,
# Compose v2, the stand-in base images, the sidecar image built offline, the GlitchTip stand-in, the fake
# Infisical bundle), then runs each scenario of test/e2e/scenarios/ in its own bash process and Compose project,
# one after another, going on after a failure. Ends with `e2e: N passed, M failed` (scenarios); exit 1 if any failed.
#
#   bash test/e2e/run.sh                        # every scenario
#   bash test/e2e/run.sh 05 glitchtip-6         # those whose names, or names after the number, start so
#   bash test/e2e/run.sh '*role*'               # a glob matches the whole name
#   E2E_SCENARIOS="07 08" bash test/e2e/run.sh  # the same, from the environment (arguments win)
#   E2E_JOBS=2 bash test/e2e/run.sh             # two scenarios at a time (default: one after another)
#
# Debugging: E2E_KEEP_WORK=1 keeps the work directory (no secret of anyone's: the seed is test/e2e/seed.json);
# E2E_KEEP_UP=1 leaves a failed scenario's project up (and the dockerd this run started); E2E_SIDECAR_IMAGE=name
# tests that image instead of building one.
set -euo pipefail
{ # one compound command: bash reads all of it before running any, so editing this file during a run is harmless
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E/../.." && pwd)
source "$REPO_ROOT/scripts/docker/lib.sh"
IMG_GLITCHTIP=local/glitchtip-standin:e2e

# ---------------------------------------------------------------- which scenarios
ALL=()
for f in "$E2E"/scenarios/[0-9]*.sh; do ALL+=("$(basename "$f" .sh)"); done
PATTERNS=("$@")
[ ${#PATTERNS[@]} -gt 0 ] || read -r -a PATTERNS <<<"${E2E_SCENARIOS:-}"
SELECTED=()
if [ ${#PATTERNS[@]} = 0 ]; then SELECTED=("${ALL[@]}")
else
  for p in "${PATTERNS[@]}"; do
    p=${p%.sh} p=${p##*/} n=0
    [[ "$p" == *[*?[]* ]] || p="$p*"   # no glob characters: a prefix, of the name or of the name after its number
    for s in "${ALL[@]}"; do
      # shellcheck disable=SC2053
      [[ $s == $p || ${s#[0-9][0-9]-} == $p ]] || continue
      n=$((n + 1))
      [[ " ${SELECTED[*]} " == *" $s "* ]] || SELECTED+=("$s")
    done
    [ $n -gt 0 ] || die "no scenario matches '$p'; there are: ${ALL[*]}"
  done
fi

SHARED=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${KEEP_DOCKERD:-0}" = 1 ]; then
    say "E2E_KEEP_UP=1 and a scenario failed: its project, $SHARED and dockerd are left as they are"
  else
    [ -z "$SHARED" ] || [ "${E2E_KEEP_WORK:-0}" = 1 ] || rm -rf "$SHARED"
    if [ -n "$DOCKERD_STARTED_PID" ]; then dockerd_stop "$DOCKERD_STARTED_PID"; say "stopped the dockerd this run started"; fi
  fi
  say "e2e total $(elapsed)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- prerequisites, once
say "== prerequisites: packages, dockerd, Compose v2, stand-in images"
[ "$(id -u)" = 0 ] || die "run as root (dockerd, debootstrap, reading /var/lib/docker)"
timed "apt: docker.io debootstrap curl (if missing)" ensure_docker_packages
timed "dockerd" dockerd_start
[ -z "$DOCKERD_STARTED_PID" ] && say "dockerd was already running (left running)" || say "started dockerd pid $DOCKERD_STARTED_PID (stopped at the end)"
COMPOSE=$(timed "Compose v2" "$REPO_ROOT/scripts/docker/compose-v2.sh")
say "compose: $COMPOSE ($($COMPOSE version --short))"
timed "stand-in base images" "$REPO_ROOT/scripts/docker/stand-ins.sh"

# ---------------------------------------------------------------- what the scenarios share, built once
say "== images: the sidecar (offline build), GlitchTip stand-in, fake Infisical bundle"
if [ -n "${E2E_SIDECAR_IMAGE:-}" ]; then   # test an image built elsewhere instead
  IMG_SIDECAR=$E2E_SIDECAR_IMAGE; have_image "$IMG_SIDECAR" || die "no image $IMG_SIDECAR"
else
  timed "docker build --network=none (sidecar)" "$REPO_ROOT/scripts/docker/build-image.sh" "$IMG_SIDECAR" >/dev/null \
    || die "the sidecar image did not build"
fi
timed "docker build --network=none (GlitchTip stand-in)" "$DOCKER" build -q --network=none \
  --build-arg BASE_IMAGE="$IMG_POSTGRES" -t "$IMG_GLITCHTIP" "$E2E/standin" >/dev/null

SHARED=$(mktemp -d /tmp/infisical-sidecar-e2e.XXXXXX)
chmod 0755 "$SHARED"   # the fake's directory is bind-mounted for uid 65532
mkdir -p "$SHARED/fake" "$SHARED/logs"
timed "esbuild fake Infisical" "$REPO_ROOT/node_modules/.bin/esbuild" "$REPO_ROOT/test/fake-infisical/main.ts" \
  --bundle --platform=node --format=esm --target=node20 --log-level=warning --outfile="$SHARED/fake/fake-infisical.js" \
  --banner:js="import{createRequire}from'module';const require=createRequire(import.meta.url);"
cp "$E2E/seed.json" "$E2E/fake-ctl.mjs" "$SHARED/fake/"
chmod -R a+rX "$SHARED/fake"

# The machine identity's credentials as the production recipe has them: host files readable by uid 65532 only,
# in a directory that need not be open to the container user (docs/production.md §1; Compose bind-mounts them
# with the host owner and mode). Trailing newline as `gopass show` would print it.
install -d -m 0700 "$SHARED/secrets"
node -e 'const s = require(process.argv[1]); process.stdout.write(s.identities[0].clientId + "\n")' "$E2E/seed.json" >"$SHARED/secrets/infisical-client-id"
node -e 'const s = require(process.argv[1]); process.stdout.write(s.identities[0].clientSecret + "\n")' "$E2E/seed.json" >"$SHARED/secrets/infisical-client-secret"
chown 65532:0 "$SHARED"/secrets/*; chmod 0400 "$SHARED"/secrets/*

export E2E_SHARED=$SHARED COMPOSE IMG_SIDECAR IMG_GLITCHTIP   # what lib.sh reads
say "shared: $SHARED"

# ---------------------------------------------------------------- the scenarios, each in its own process
# Each in its own bash process (a `fail` ends only it, with its project), stdin closed, its output kept in
# logs/. E2E_JOBS=1 (the default) runs them one after another, output live; more run side by side (each project
# is separate; the output of each is printed when it ends).
JOBS=${E2E_JOBS:-1}
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "E2E_JOBS=$JOBS: want a number >= 1"
say "== ${#SELECTED[@]} scenario(s), $JOBS at a time: ${SELECTED[*]}"
PASSED=0 FAILED=0 SUMMARY=()
declare -A NAME_OF=() T0_OF=()
# record NAME RC T0: one result line, counted
record() {
  local secs result
  secs=$(awk -v ms=$(( $(now_ms) - $3 )) 'BEGIN { printf "%.1f", ms / 1000 }')
  if [ "$2" = 0 ]; then PASSED=$((PASSED + 1)) result=PASS
  else FAILED=$((FAILED + 1)) result="FAIL (exit $2)"
    [ "${E2E_KEEP_UP:-0}" != 1 ] || KEEP_DOCKERD=1
  fi
  SUMMARY+=("$(printf '%-34s %-14s %7s s' "$1" "$result" "$secs")")
  say "======== $1: $result in $secs s"
}
if [ "$JOBS" = 1 ]; then
  for s in "${SELECTED[@]}"; do
    say "======== $s"
    t0=$(now_ms)
    set +e
    bash "$E2E/scenarios/$s.sh" </dev/null 2>&1 | tee "$SHARED/logs/$s.log"
    rc=${PIPESTATUS[0]}
    set -e
    record "$s" "$rc" "$t0"
  done
else
  queue=("${SELECTED[@]}")
  while [ ${#queue[@]} -gt 0 ] || [ ${#NAME_OF[@]} -gt 0 ]; do
    while [ ${#queue[@]} -gt 0 ] && [ ${#NAME_OF[@]} -lt "$JOBS" ]; do
      s=${queue[0]} queue=("${queue[@]:1}")
      bash "$E2E/scenarios/$s.sh" </dev/null >"$SHARED/logs/$s.log" 2>&1 &
      NAME_OF[$!]=$s T0_OF[$!]=$(now_ms)
      say "======== $s started (pid $!)"
    done
    set +e; wait -n -p done_pid "${!NAME_OF[@]}"; rc=$?; set -e
    s=${NAME_OF[$done_pid]}
    say "======== $s"; cat "$SHARED/logs/$s.log"
    record "$s" "$rc" "${T0_OF[$done_pid]}"
    unset "NAME_OF[$done_pid]" "T0_OF[$done_pid]"
  done
fi

say "== summary"
printf '  %s\n' "${SUMMARY[@]}"
echo "e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
exit
}
