#!/usr/bin/env bash
# The Docker API path (compose.docker-api.yml, WITH_SECRETS_RESTART=false): recreating secrets, web, worker and
# beat carries the revision on; each wrapper execs its app as PID 1; a rotated DEFAULT_FROM_EMAIL makes the
# sidecar restart worker through the mounted socket — and nothing else of this project, nor a container of
# another project with the same service name; web and beat keep the previous value.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed
up_project
settle

step "Docker API path: the sidecar restarts worker through the socket (SIDECAR_RESTART_SERVICES=worker)"
# compose.docker-api.yml: the socket, its group for uid 65532, short debounce/cooldown; WITH_SECRETS_RESTART=false
# for every consumer, as an operator opts out in .env, so no wrapper restarts anything: only the API acts.
DOCKER_GID=$(stat -c %g "$DOCKER_SOCK")
printf 'E2E_DOCKER_SOCK=%s\nE2E_DOCKER_GID=%s\nWITH_SECRETS_RESTART=false\n' "$DOCKER_SOCK" "$DOCKER_GID" >>"$WORK/.env"
EXTRA_FILES=(-f "$E2E/compose.docker-api.yml")
dc config -q || fail "compose config with compose.docker-api.yml"
dc logs --no-color >"$WORK/logs-before-api.log" 2>&1   # the containers about to be replaced: finish checks them too
ids() { local s; for s in secrets web worker beat postgres redis fake-infisical; do printf '%s=%s ' $s "$(cid $s | cut -c1-12)"; done; }
IDS_BEFORE=$(ids) REV_BEFORE_UP=$(healthz_field revision)
# --no-deps: Compose v2 would otherwise recreate postgres too, as it depends on `secrets` (docker/compose#10308);
# postgres keeps holding the tmpfs volume, so the new sidecar finds the current version there.
T0=$(now_ms)
dc up -d --wait --no-deps secrets web worker beat >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up with compose.docker-api.yml"; }
IDS_AFTER=$(ids)
RECREATED=$(for s in secrets web worker beat postgres redis fake-infisical; do
  [ "$(grep -o "$s=[0-9a-f]*" <<<"$IDS_BEFORE")" = "$(grep -o "$s=[0-9a-f]*" <<<"$IDS_AFTER")" ] || printf '%s ' $s; done)
[ "$RECREATED" = "secrets web worker beat " ] || fail "recreated: $RECREATED; want secrets web worker beat"
[ "$(healthz_field revision)" = "$REV_BEFORE_UP" ] && [ "$(rev_on_volume)" = "$REV_BEFORE_UP" ] \
  || fail "the recreated sidecar did not carry the revision on: $REV_BEFORE_UP → $(healthz_field revision) (volume $(rev_on_volume))"
ok "\`up -d --no-deps\` recreated $RECREATED in $(( $(now_ms) - T0 )) ms; the new sidecar carried revision $REV_BEFORE_UP on (content unchanged: nothing written)"
[ "$(inspect secrets '{{.HostConfig.GroupAdd}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}}')" = "[$DOCKER_GID] 65532:5000 true" ] \
  || fail "sidecar: $(inspect secrets '{{.HostConfig.GroupAdd}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}}')"
for svc in web worker beat; do
  poll 30 app_running $svc || fail "$svc's app is not running after the recreation"
  check_app $svc exec
done
ok "socket $DOCKER_SOCK (gid $DOCKER_GID) mounted, sidecar still 65532:5000 + group $DOCKER_GID, read-only; WITH_SECRETS_RESTART=false: each wrapper exec'd its app as PID 1 ($APP_OUT)"
# a container of another project with the same service name: the sidecar must not touch it
DECOY=$(run_extra decoy --network none --label "com.docker.compose.project=$PROJECT-other" \
  --label com.docker.compose.service=worker "$IMG_DEBIAN" sleep infinity) || fail "the decoy did not start"
OTHERS="web beat postgres redis fake-infisical secrets"
STATE_BEFORE="$(restart_state $OTHERS) decoy:$("$DOCKER" inspect -f '{{.RestartCount}}:{{.State.StartedAt}}' "$DECOY")"
WORKER_STARTED=$(inspect worker '{{.State.StartedAt}}')
cp "$WORK/expected.json" "$WORK/expected-before-api.json"
NEW_FROM_EMAIL="\"Rotated ✓ 'GlitchTip'\" <alerts+\$x@example.test>"
REV_BEFORE=$(healthz_field revision)
[ "$(inspect worker '{{.State.StartedAt}}')" = "$WORKER_STARTED" ] || fail "worker restarted before any rotation"
T_PUT=$(now_ms)
rotate /glitchtip/application DEFAULT_FROM_EMAIL "$NEW_FROM_EMAIL"
T0=$(now_ms)
reload_done() {   # the sidecar's JSON log: `reload action done` by the docker action, for revision $1
  "$DOCKER" logs "$(cid secrets)" 2>/dev/null | node -e '
    const lines = require("fs").readFileSync(0, "utf8").split("\n");
    const hit = lines.some((l) => { try { const j = JSON.parse(l); return j.msg === "reload action done" && j.action === "docker" && j.revision === Number(process.argv[1]); } catch { return false; } });
    process.exit(hit ? 0 : 1);' "$1"
}
poll $((3 * REFRESH_S + 15)) reload_done $((REV_BEFORE + 1)) \
  || fail "no 'reload action done' (action docker, revision $((REV_BEFORE + 1))) in the sidecar's log: $("$DOCKER" logs --tail 5 "$(cid secrets)" 2>&1 | tr '\n' ' ')"
DONE_MS=$(( $(now_ms) - T0 ))
[ "$(inspect worker '{{.State.StartedAt}}')" != "$WORKER_STARTED" ] || fail "worker was not restarted"
[ "$(started_ms worker)" -ge "$T_PUT" ] || fail "worker restarted before the rotation"
poll 10 app_running worker || fail "worker's app is not running after the sidecar restarted it"
check_app worker exec
ok "worker restarted by the sidecar through the Docker API $(( $(started_ms worker) - T0 )) ms after the rotation ('reload action done', action docker, revision $((REV_BEFORE + 1)), logged after $DONE_MS ms): $APP_OUT (the rotated DEFAULT_FROM_EMAIL included)"
STATE_AFTER="$(restart_state $OTHERS) decoy:$("$DOCKER" inspect -f '{{.RestartCount}}:{{.State.StartedAt}}' "$DECOY")"
[ "$STATE_AFTER" = "$STATE_BEFORE" ] || fail "other containers were restarted: $STATE_BEFORE → $STATE_AFTER"
for svc in web beat; do check_app $svc exec "$WORK/expected-before-api.json"; done
ok "untouched: web, beat, postgres, redis, fake-infisical, secrets, and the other project's 'worker' (start times and restart counts unchanged); web and beat still run with the previous DEFAULT_FROM_EMAIL, as WITH_SECRETS_RESTART=false means"
"$DOCKER" rm -f "$DECOY" >/dev/null

finish
