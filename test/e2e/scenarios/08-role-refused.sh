#!/usr/bin/env bash
# When the role's password was changed by other means, a rotated POSTGRES_PASSWORD is held: the previous set
# stays byte-identical, nobody restarts, /healthz says degraded with SIDECAR_POSTGRES_ROLE_REFUSED naming the
# role, and role_checks_total{result="refused"} grows with the retries. Once the role is set to the new value by
# hand the set is published (lastResult already), web, worker and beat restart once and reconnect.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed
up_project
settle

step "POSTGRES_PASSWORD rotated after the role's password was changed by other means: the old set stays, then published once fixed by hand"
out=$(healthz_wait 20 'b.status === "ok" && b.postgres?.state === "in_step"') || fail "before: /healthz $(field status "$out") $(field postgres "$out")"
REV_BEFORE=$(field revision "$out") FILES_BEFORE=$(files_digest) STATE_BEFORE=$(restart_state web worker beat) REFUSED_BEFORE=$(role_checks refused)
for svc in web worker beat; do R0[$svc]=$(restarts $svc); done
# someone sets the role's password by hand to a value nobody told Infisical
pg_set_role_password "$(node -e 'process.stdout.write(require("crypto").randomBytes(18).toString("hex"))')" || fail "ALTER ROLE by hand"
FIXED_PG_PASSWORD="f1xed by h@nd 'pw' \"q\" \$z %42 \\ ok"
fake_put /glitchtip/database POSTGRES_PASSWORD "$FIXED_PG_PASSWORD"
T0=$(now_ms)
out=$(healthz_wait $((3 * REFRESH_S + 10)) 'b.lastError?.code === "SIDECAR_POSTGRES_ROLE_REFUSED"') \
  || fail "no SIDECAR_POSTGRES_ROLE_REFUSED on /healthz: HTTP ${out%% *}, status $(field status "$out"), lastError $(field lastError.code "$out")"
HELD_MS=$(( $(now_ms) - T0 ))
[ "${out%% *} $(field status "$out") $(field postgres.state "$out") $(field postgres.lastResult "$out") $(field revision "$out")" = "200 degraded pending refused $REV_BEFORE" ] \
  || fail "/healthz while held: HTTP ${out%% *}, status $(field status "$out"), postgres $(field postgres "$out"), revision $(field revision "$out") (want 200 degraded pending refused $REV_BEFORE)"
[[ "$(field lastError.message "$out")" == *glitchtip_maintainer* ]] || fail "SIDECAR_POSTGRES_ROLE_REFUSED does not name the role: $(field lastError.message "$out")"
[ "$(files_digest)" = "$FILES_BEFORE" ] || fail "files changed though the role refused the new password"
REFUSED_1=$(role_checks refused)
[ "$REFUSED_1" -gt "$REFUSED_BEFORE" ] || fail "infisical_sidecar_postgres_role_checks_total{result=\"refused\"} did not grow ($REFUSED_BEFORE → $REFUSED_1)"
log_has secrets '"code":"SIDECAR_POSTGRES_ROLE_REFUSED"' || fail "the sidecar's log has no SIDECAR_POSTGRES_ROLE_REFUSED"
ok "held $HELD_MS ms after the PUT: /healthz HTTP 200, status degraded, lastError SIDECAR_POSTGRES_ROLE_REFUSED naming the role, postgres pending/refused, revision still $REV_BEFORE; files byte-identical; role_checks_total{result=\"refused\"} $REFUSED_1; logged"
sleep $((2 * REFRESH_S + 1))
REFUSED_2=$(role_checks refused)
[ "$REFUSED_2" -gt "$REFUSED_1" ] || fail "not retried: role_checks_total{result=\"refused\"} still $REFUSED_2 after $((2 * REFRESH_S + 1)) s"
[ "$(files_digest)" = "$FILES_BEFORE" ] && [ "$(restart_state web worker beat)" = "$STATE_BEFORE" ] || fail "files changed or a consumer restarted while held"
ok "retried: refused $REFUSED_1 → $REFUSED_2 in $((2 * REFRESH_S + 1)) s; files still the previous set, no consumer restarted; /healthz now $(healthz_field status) (a hold counts against SIDECAR_MAX_STALENESS=${STALENESS_S}s)"
# the operator follows the hint: sets the role to the value in Infisical by hand; the next retry finds it in place
set_expected POSTGRES_PASSWORD "$FIXED_PG_PASSWORD"
pg_set_role_password "$FIXED_PG_PASSWORD" || fail "ALTER ROLE by hand"
T1=$(now_ms)
out=$(healthz_wait $((3 * REFRESH_S + 10)) "b.status === \"ok\" && b.revision === $((REV_BEFORE + 1))") \
  || fail "not published after the role was fixed by hand: status $(field status "$out"), revision $(field revision "$out"), lastError $(field lastError.code "$out")"
[ "$(field postgres.lastResult "$out") $(field postgres.state "$out")" = "already in_step" ] || fail "/healthz postgres after the fix: $(field postgres "$out")"
out2=$(node "$E2E/check.mjs" files "$WORK/expected.json" "$VOL") || fail "files after the fix"
ok "published $(( $(now_ms) - T1 )) ms after the fix by hand (postgres lastResult already): $out2"
for svc in web worker beat; do
  poll $((POLL_S + 20)) restarted_once $svc || fail "$svc did not restart after the fix (restarts ${R0[$svc]} → $(restarts $svc))"
done
for svc in web worker beat; do   # connected: with the fixed password, the only one the role accepts now
  poll 60 connected_this_run $svc || fail "$svc did not reconnect after the fix"
done
ok "web, worker, beat restarted once and reconnected with the fixed DATABASE_URL (started +$(( $(started_ms web) - T1 )), +$(( $(started_ms worker) - T1 )), +$(( $(started_ms beat) - T1 )) ms after the fix)"
pg_log_clean "$FIXED_PG_PASSWORD" "$(url_password "$(cat "$VOL/keys/DATABASE_URL")")" || fail "the fixed password is in PostgreSQL's log"
finish
