#!/usr/bin/env bash
# POSTGRES_PASSWORD rotated in Infisical while the stack was down (PostgreSQL's data kept). With the cache: `up -d`
# publishes the cached set (the password the role has) and turns healthy, postgres starts, then the sidecar changes
# the role and publishes the rotated set, and the consumers reconnect with it (a non-ASCII password). Without the
# cache volume: the new set goes out, /healthz names SIDECAR_POSTGRES_PASSWORD_UNKNOWN with ALTER ROLE in its hint,
# and the manual fix brings it in step. PostgreSQL's log holds no password in any form.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed seed-cache --cache
up_project
settle
poll 20 eval '[ "$(cache_files)" -ge 1 ]' || fail "no cache file in ${PROJECT}_sidecar-cache after the first sync"

step "reboot after POSTGRES_PASSWORD was rotated while the stack was down (--cache): up on the cached set, then the role changed"
out=$(healthz_wait 20 'b.status === "ok" && b.postgres?.state === "in_step"') || fail "before: /healthz $(field status "$out") $(field postgres "$out")"
OLD_DATABASE_URL=$(cat "$VOL/keys/DATABASE_URL") OLD_PG_PASSWORD=$(cat "$VOL/keys/POSTGRES_PASSWORD")
dc logs --no-color >"$WORK/logs-before-down-1.log" 2>&1   # `down` removes the containers: finish checks these too
dc_down || fail "compose down: $(tail -3 "$WORK/down.log")"
[ -n "$("$DOCKER" volume ls -q --filter name="${PROJECT}_pg-data")" ] && [ -n "$("$DOCKER" volume ls -q --filter name="${PROJECT}_sidecar-cache")" ] \
  || fail "\`down\` removed PostgreSQL's data or the cache volume"
# rotated in Infisical while the stack is down (the fake's seed: it starts with it); non-ASCII, so that the
# verifier the sidecar builds (SASLprep) meets the app's libpq login
OFFLINE_PG_PASSWORD="öffline pässwörd ✓ 'x' \$y %41 @:/"
rotate_in_seed /glitchtip/database POSTGRES_PASSWORD "$OFFLINE_PG_PASSWORD"
T0=$(now_ms)
timeout 120 $COMPOSE --project-name "$PROJECT" --project-directory "$WORK" --progress quiet --ansi never "${DC_FILES[@]}" \
  up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "\`up -d\` after the offline rotation (--cache) failed or took over 120 s"; }
UP_MS=$(( $(now_ms) - T0 ))
VOL=$(volume_dir)
FIRST_HEALTHY_MS=$(first_healthy_ms "$T0")
[ -n "$FIRST_HEALTHY_MS" ] && [ "$(started_ms postgres)" -ge "$FIRST_HEALTHY_MS" ] \
  || fail "postgres started before the sidecar was healthy (or no healthy event)"
log_has secrets 'new database password not yet taken by PostgreSQL and the volume was empty: files written from the last-known-good cache' \
  || fail "the sidecar did not start from the cached set: $("$DOCKER" logs --tail 5 "$(cid secrets)" 2>&1 | tr '\n' ' ')"
ok "\`up -d\` returned after $UP_MS ms: the sidecar, unable to reach PostgreSQL (gated on its health), published the cached set (the password the role has) and turned healthy $((FIRST_HEALTHY_MS - T0)) ms after up; postgres started after it ($(( $(started_ms postgres) - T0 )) ms)"
out=$(healthz_wait 60 'b.status === "ok" && b.postgres?.lastResult === "set"') \
  || fail "the role was not changed after the reboot: status $(field status "$out"), source $(field source "$out"), postgres $(field postgres "$out"), lastError $(field lastError.code "$out")"
[ "$(field source "$out") $(field postgres.state "$out")" = "infisical in_step" ] || fail "/healthz: source $(field source "$out"), postgres $(field postgres "$out")"
T_FILES=$(sidecar_log_ms "secrets written" "$(field revision "$out")") || fail "no 'secrets written' for revision $(field revision "$out")"
out2=$(node "$E2E/check.mjs" files "$WORK/expected.json" "$VOL") || fail "files after the role change"
pg_login "$OLD_DATABASE_URL" && fail "postgres still accepts the password from before the offline rotation"
ok "then role sync changed the role (lastResult set, $(( $(date -d "$(field postgres.lastChangeAt "$out")" +%s%3N) - T0 )) ms after up) and published the rotated set ($((T_FILES - T0)) ms after up, source infisical, status ok): $out2; the old DATABASE_URL refused"
for svc in web worker beat; do   # on the new set (once restarted), and connected since their start
  poll 60 app_current $svc || fail "$svc does not run with the rotated POSTGRES_PASSWORD"
  poll 60 connected_this_run $svc || fail "$svc did not connect with the new DATABASE_URL"
done
check_app web child
ok "web, worker, beat connected with the new DATABASE_URL (restarts since up: web $(restarts web), worker $(restarts worker), beat $(restarts beat); 1: started on the cached set, restarted with the new one; 0: started after the new set was out); web: $APP_OUT"
[ "$(alter_role_lines)" = 1 ] || fail "PostgreSQL logged $(alter_role_lines) ALTER ROLE CURRENT_USER PASSWORD 'SCRAM-SHA-256\$… statements, want 1"
pg_log_clean "$OLD_PG_PASSWORD" "$OFFLINE_PG_PASSWORD" "$(url_password "$OLD_DATABASE_URL")" "$(url_password "$(cat "$VOL/keys/DATABASE_URL")")" \
  || fail "a database password is in PostgreSQL's log"
ok "PostgreSQL's log: one ALTER ROLE with a SCRAM verifier, no password in any form (the non-ASCII one included)"

step "reboot after an offline rotation without a cache (cache volume removed, PostgreSQL's data kept): up, then the manual fix named"
OLD_DATABASE_URL=$(cat "$VOL/keys/DATABASE_URL") OLD_PG_PASSWORD=$(cat "$VOL/keys/POSTGRES_PASSWORD")
dc logs --no-color >"$WORK/logs-before-down-2.log" 2>&1
dc_down || fail "compose down: $(tail -3 "$WORK/down.log")"
"$DOCKER" volume rm "${PROJECT}_sidecar-cache" >/dev/null || fail "could not remove ${PROJECT}_sidecar-cache"
[ -n "$("$DOCKER" volume ls -q --filter name="${PROJECT}_pg-data")" ] || fail "PostgreSQL's data volume is gone"
NOCACHE_PG_PASSWORD="n0 c4che p@ss 'w' \"q\" \$q %43"
rotate_in_seed /glitchtip/database POSTGRES_PASSWORD "$NOCACHE_PG_PASSWORD"
T0=$(now_ms)
timeout 60 $COMPOSE --project-name "$PROJECT" --project-directory "$WORK" --progress quiet --ansi never "${DC_FILES[@]}" \
  up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "\`up -d\` without the cache failed or took over 60 s"; }
UP_MS=$(( $(now_ms) - T0 ))
VOL=$(volume_dir)
out=$(healthz_wait 60 'b.lastError?.code === "SIDECAR_POSTGRES_PASSWORD_UNKNOWN"') \
  || fail "no SIDECAR_POSTGRES_PASSWORD_UNKNOWN within 60 s: HTTP ${out%% *}, status $(field status "$out"), lastError $(field lastError.code "$out")"
UNKNOWN_MS=$(( $(now_ms) - T0 ))
[ "${out%% *} $(field status "$out") $(field postgres.state "$out") $(field postgres.lastResult "$out")" = "200 degraded pending unknown" ] \
  || fail "/healthz: HTTP ${out%% *}, status $(field status "$out"), postgres $(field postgres "$out") (want 200 degraded pending unknown)"
[[ "$(field lastError.hint "$out")" == *"ALTER ROLE"* ]] && [[ "$(field lastError.message "$out")" == *glitchtip_maintainer* ]] \
  || fail "SIDECAR_POSTGRES_PASSWORD_UNKNOWN does not name the role and the manual fix: $(field lastError "$out")"
is_health secrets healthy || fail "sidecar $(health secrets)"
out2=$(node "$E2E/check.mjs" files "$WORK/expected.json" "$VOL") || fail "files without the cache"
pg_login "$(cat "$VOL/keys/DATABASE_URL")" && fail "postgres accepts a password nobody set"
ok "\`up -d\` returned after $UP_MS ms; the new set is out ($out2), the sidecar healthy (HTTP 200, degraded); after $UNKNOWN_MS ms /healthz names SIDECAR_POSTGRES_PASSWORD_UNKNOWN, the role and ALTER ROLE in its hint"
pg_set_role_password "$NOCACHE_PG_PASSWORD" || fail "ALTER ROLE by hand"
T1=$(now_ms)
out=$(healthz_wait 30 'b.status === "ok" && b.postgres?.state === "in_step"') \
  || fail "not in step after the manual fix: status $(field status "$out"), postgres $(field postgres "$out"), lastError $(field lastError.code "$out")"
[ "$(field postgres.lastResult "$out")" = already ] || fail "/healthz postgres after the manual fix: $(field postgres "$out")"
for svc in web worker beat; do poll 60 connected_this_run $svc || fail "$svc did not connect after the manual fix"; done
pg_log_clean "$OLD_PG_PASSWORD" "$NOCACHE_PG_PASSWORD" "$(url_password "$(cat "$VOL/keys/DATABASE_URL")")" || fail "a database password is in PostgreSQL's log"
ok "after the ALTER ROLE by hand /healthz is ok, postgres in step (already) in $(( $(now_ms) - T1 )) ms; web, worker, beat connected with the new DATABASE_URL; no password in PostgreSQL's log"

finish
