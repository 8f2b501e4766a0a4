#!/usr/bin/env bash
# The image builds from a fresh clone both ways — offline from the host's node_modules, and online with npm ci
# inside the build and the CA only as a build secret — and both give the same /app; the online image holds no
# CA and no npm cache (build-both.sh; a failed online step is the npm registry's, reported as such).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
step "image from a fresh clone, offline and online"
"$E2E/build-both.sh" || fail "build-both.sh: see its message above (a failed online step is the npm registry's; the other scenarios used the offline build)"
ok "both builds identical, no CA or npm cache in any layer"
pass
