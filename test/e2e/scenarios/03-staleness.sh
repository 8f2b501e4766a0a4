#!/usr/bin/env bash
# With Infisical unreachable past SIDECAR_MAX_STALENESS the sidecar turns unhealthy — not before — while the
# files stay byte-identical and the consumers keep running; once Infisical is back it is healthy again without
# rewriting unchanged content (same revision), and no consumer restarted.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed
up_project
settle

step "outage: fake Infisical stopped past SIDECAR_MAX_STALENESS=${STALENESS_S}s, then back"
BEFORE=$(files_digest)
REV_BEFORE=$(healthz_field revision)
T0=$(now_ms)
dc stop fake-infisical >/dev/null 2>&1
LAST_SUCCESS_MS=$(date -d "$(healthz_field lastSuccessAt)" +%s%3N)
poll $((STALENESS_S + 4 * REFRESH_S + 20)) is_health secrets unhealthy || fail "sidecar still $(health secrets) $(( ($(now_ms) - T0) / 1000 )) s after the fake stopped"
UNHEALTHY_AT=$(now_ms)
STATUS=$(healthz_field status)
[ "$UNHEALTHY_AT" -ge $((LAST_SUCCESS_MS + STALENESS_S * 1000)) ] \
  || fail "unhealthy $((UNHEALTHY_AT - LAST_SUCCESS_MS)) ms after the last sync: before the staleness bound (/healthz status: $STATUS)"
[ "$(files_digest)" = "$BEFORE" ] || fail "files changed while Infisical was down"
for svc in web worker beat; do [ "$(inspect $svc '{{.State.Running}}')" = true ] || fail "$svc stopped during the outage"; done
ok "docker health 'unhealthy' $((UNHEALTHY_AT - LAST_SUCCESS_MS)) ms after the last sync ($((UNHEALTHY_AT - T0)) ms after the fake stopped; /healthz status: $STATUS); files byte-identical; consumers running"
T1=$(now_ms)
dc start fake-infisical >/dev/null 2>&1
poll $((4 * REFRESH_S + 15)) is_health secrets healthy || fail "sidecar still $(health secrets) after the fake returned"
ok "healthy again $(( $(now_ms) - T1 )) ms after the fake returned"
[ "$(files_digest)" = "$BEFORE" ] && [ "$(healthz_field revision)" = "$REV_BEFORE" ] \
  || fail "unchanged secrets were rewritten after the outage"
ok "unchanged content was not rewritten (revision still $REV_BEFORE)"
for svc in web worker beat; do [ "$(restarts $svc)" = 0 ] || fail "$svc restarted $(restarts $svc) times though no secret changed"; done
ok "no consumer restarted across the outage (their wrappers read the revision every ${POLL_S}s)"
finish
