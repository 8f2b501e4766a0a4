#!/usr/bin/env bash
# Every tier, in order of how soon it answers (`npm run test:all`, what .ci/run and the README's second
# command run): the type check, the fast tier, the system tier, the bench's quick pass, the Docker e2e.
# Runs them all even after a failure, prints each one's time and result, and fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

declare -a NAMES=() RESULTS=() SECONDS_TAKEN=()
failed=0
tier() {
  local name=$1 start=$SECONDS rc
  shift
  printf '\n=== %s: %s\n' "$name" "$*"
  "$@"
  rc=$?
  NAMES+=("$name") SECONDS_TAKEN+=($((SECONDS - start)))
  if [ $rc = 0 ]; then RESULTS+=(ok); else RESULTS+=("FAILED (exit $rc)"); failed=$((failed + 1)); fi
}

tier typecheck npm run --silent typecheck
tier "fast tier" npm test --silent
tier "system tier" npm run --silent test:system
tier "bench (quick)" npm run --silent bench -- --quick
tier e2e npm run --silent test:e2e

printf '\n=== tiers\n'
for i in "${!NAMES[@]}"; do printf '%-14s %5ss  %s\n' "${NAMES[$i]}" "${SECONDS_TAKEN[$i]}" "${RESULTS[$i]}"; done
[ $failed = 0 ]
