#!/usr/bin/env bash
# `secrets check` before the first start names the keys and prints no value; web, worker, beat and postgres
# start only after the sidecar's first sync, each app with every secret byte-exact (hostile values) in its
# environment and none in any argv or container config; the volume's modes keep other uids out; postgres takes
# its password from keys/POSTGRES_PASSWORD and web connects with the derived DATABASE_URL; /healthz answers on
# the project's network and no host port is published.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed

step "up: the consumers wait for the sidecar's first sync"
dc up -d --wait fake-infisical >/dev/null
# docs/production.md §4: `check` before the first start — logs in, fetches, names the keys, writes nothing
dc run --rm --no-deps secrets check >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out" >&2; fail "secrets check"; }
grep -q '^infisical-sidecar check: OK' "$WORK/check.out" && grep -q '^  SECRET_KEY$' "$WORK/check.out" \
  || { cat "$WORK/check.out" >&2; fail "secrets check output"; }
node -e '
  const [expected, out] = process.argv.slice(1).map((f) => require("fs").readFileSync(f, "utf8"));
  if (Object.values(JSON.parse(expected)).some((v) => out.includes(v.split("\n")[0]))) process.exit(1);
' "$WORK/expected.json" "$WORK/check.out" || fail "secrets check printed a secret value"
ok "\`docker compose run --rm --no-deps secrets check\`: OK, key names listed, no value printed"
fake_latency   # the first sync takes >= FIRST_SYNC_DELAY_MS, so gating is observable
UP_T0=$(now_ms)
dc up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up"; }
UP_RETURNED=$(( $(now_ms) - UP_T0 ))
is_health secrets healthy || fail "sidecar not healthy after up: $(health secrets)"
SIDECAR_START=$(started_ms secrets)
HEALTH_LOG=$(health_log)
FIRST_HEALTHY_MS=$(first_healthy_ms "$UP_T0")
[ -n "$FIRST_HEALTHY_MS" ] || fail "no 'health_status: healthy' event of the sidecar since up"
# a failed check before the first healthy one, while the health log (5 checks) still holds it
FIRST_FAILED_MS=$(awk '$1 != 0 { print substr($2, 1, 13); exit }' <<<"$HEALTH_LOG")
OLDEST_CHECK_MS=$(awk '{ print substr($2, 1, 13); exit }' <<<"$HEALTH_LOG")
if [ "${OLDEST_CHECK_MS:-0}" -le "$FIRST_HEALTHY_MS" ]; then
  [ -n "$FIRST_FAILED_MS" ] && [ "$FIRST_FAILED_MS" -lt "$FIRST_HEALTHY_MS" ] \
    || fail "the health log does not show the sidecar unhealthy before its first sync"
else
  say "the health log has rotated past the first healthy check (a loaded machine): failed checks before it not visible"
fi
for svc in web worker beat postgres; do
  s=$(started_ms $svc)
  [ "$s" -ge "$FIRST_HEALTHY_MS" ] || fail "$svc started $((FIRST_HEALTHY_MS - s)) ms before the sidecar was healthy"
  [ $((s - SIDECAR_START)) -ge "$FIRST_SYNC_DELAY_MS" ] || fail "$svc started only $((s - SIDECAR_START)) ms after the sidecar"
done
WEB_START=$(started_ms web)
say "timeline (ms after up): sidecar started $((SIDECAR_START - UP_T0)), healthy $((FIRST_HEALTHY_MS - UP_T0)), postgres $(( $(started_ms postgres) - UP_T0 )), web $((WEB_START - UP_T0)), worker $(( $(started_ms worker) - UP_T0 )), beat $(( $(started_ms beat) - UP_T0 )), up returned $UP_RETURNED"
sleep 1   # a consumer that cannot source the file exits at once: give it the chance to show
for svc in web worker beat postgres; do
  state=$(inspect $svc '{{.State.Status}} {{.RestartCount}}')
  [ "$state" = "running 0" ] || fail "$svc is '$state' (status, restarts): $("$DOCKER" logs --tail 3 "$(cid $svc)" 2>&1 | tr '\n' ' ')"
done
ok "web, worker, beat, postgres started after the sidecar's first healthy check (sidecar start → healthy $((FIRST_HEALTHY_MS - SIDECAR_START)) ms, first sync delayed ${FIRST_SYNC_DELAY_MS} ms by the fake)"
say "time from \`up\` to consumers started: $((WEB_START - UP_T0)) ms (first healthy check → web started: $((WEB_START - FIRST_HEALTHY_MS)) ms); up -d returned after $UP_RETURNED ms"
[ "$(inspect secrets '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Init}} {{.Config.User}}')" = "true true 65532:5000" ] \
  || fail "sidecar container is not read-only/init/65532:5000"
ok "sidecar runs read-only, with init, as 65532:5000"
# another container on the project's network reads /healthz by service name; the host gets no port
T0=$(now_ms)
BODY=$("$DOCKER" run --rm --network "${PROJECT}_default" "$IMG_NODE" node -e \
  'fetch("http://secrets:8080/healthz").then(async (r) => { process.stdout.write(await r.text()); process.exit(r.status === 200 ? 0 : 1); })') \
  || fail "another container on ${PROJECT}_default could not read http://secrets:8080/healthz: $BODY"
# healthy: ok, or degraded while PostgreSQL, started after the sidecar, is not up yet (role sync: SIDECAR_POSTGRES_UNREACHABLE)
BODY_STATUS="$(node "$E2E/check.mjs" healthz status <<<"$BODY") $(node "$E2E/check.mjs" healthz lastError.code <<<"$BODY")"
[[ "$BODY_STATUS" =~ ^(ok\ undefined|degraded\ SIDECAR_POSTGRES_UNREACHABLE)$ ]] || fail "/healthz by service name: $BODY"
[ -z "$("$DOCKER" port "$(cid secrets)")" ] && [ "$(inspect secrets '{{json .HostConfig.PortBindings}}')" = '{}' ] \
  || fail "the sidecar publishes a host port: $("$DOCKER" port "$(cid secrets)") $(inspect secrets '{{json .HostConfig.PortBindings}}')"
ok "another container on ${PROJECT}_default read http://secrets:8080/healthz (200, status ${BODY_STATUS% undefined}) in $(( $(now_ms) - T0 )) ms; no host port published for the sidecar"

step "consumers: byte-exact environment, files, permissions"
VOL=$(volume_dir)
[ "$(stat -c '%a %u:%g' "$VOL")" = "750 65532:5000" ] || fail "volume root is $(stat -c '%a %u:%g' "$VOL")"
for f in secrets.env secrets.dotenv secrets.json keys/POSTGRES_PASSWORD keys/DATABASE_URL; do
  [ "$(stat -L -c '%a %u:%g' "$VOL/$f")" = "440 65532:5000" ] || fail "$f is $(stat -L -c '%a %u:%g' "$VOL/$f")"
done
[ "$(stat -L -c '%a %u:%g' "$VOL/keys")" = "750 65532:5000" ] || fail "keys/ is $(stat -L -c '%a %u:%g' "$VOL/keys")"
ok "tmpfs volume 0750 65532:5000; files 0440 65532:5000; keys/ 0750"
out=$(node "$E2E/check.mjs" files "$WORK/expected.json" "$VOL") || fail "files"
ok "$out"
for svc in web worker beat; do
  check_app $svc child
  ok "$svc: $APP_OUT; base placeholders replaced; no secret in any process's argv"
done
ok "restart mode (the override's default): PID 1 is \`/bin/sh with-secrets.sh CMD\`, the app its child running each original command (web: image CMD restated; worker, beat: base file's command)"
"$DOCKER" exec "$(cid web)" sh -c 'touch /run/glitchtip-secrets/x' 2>/dev/null && fail "web can write the secrets volume"
"$DOCKER" run --rm --network=none --user 1000:1000 -v "${PROJECT}_glitchtip-secrets:/s:ro" "$IMG_DEBIAN" \
  cat /s/secrets.env >/dev/null 2>&1 && fail "uid 1000 (not in group 5000) can read secrets.env"
ok "consumers mount it read-only; a uid outside group 5000 cannot read it"

step "postgres: password from keys/POSTGRES_PASSWORD, web connects with DATABASE_URL"
poll 60 log_has web '^standin db: ' || fail "web never reported its database connection"
line=$("$DOCKER" logs "$(cid web)" 2>&1 | grep '^standin db: ' | tail -1)
[ "$line" = "standin db: glitchtip_maintainer glitchtip" ] || fail "web's connection with DATABASE_URL: $line"
ok "web connected with the derived DATABASE_URL as glitchtip_maintainer to glitchtip"
"$DOCKER" exec "$(cid web)" psql "postgres://glitchtip_maintainer:wrong@postgres:5432/glitchtip" -w -tAc 'select 1' >/dev/null 2>&1 \
  && fail "postgres accepts a wrong password"
ok "postgres rejects a wrong password (scram-sha-256, not trust)"
PG_ENV=$(inspect postgres '{{range .Config.Env}}{{println .}}{{end}}')
grep -qx 'POSTGRES_PASSWORD_FILE=/run/glitchtip-secrets/keys/POSTGRES_PASSWORD' <<<"$PG_ENV" || fail "postgres has no POSTGRES_PASSWORD_FILE"
grep -q '^POSTGRES_PASSWORD=' <<<"$PG_ENV" && fail "postgres has POSTGRES_PASSWORD in its container config"
for c in $("$DOCKER" ps -q --filter "label=com.docker.compose.project=$PROJECT"); do
  "$DOCKER" inspect "$c"
done >"$WORK/inspect.json"
node -e '
  const [expected, inspect] = process.argv.slice(1).map((f) => require("fs").readFileSync(f, "utf8"));
  const leaked = Object.entries(JSON.parse(expected)).filter(([, v]) => inspect.includes(v) || inspect.includes(JSON.stringify(v).slice(1, -1)));
  if (leaked.length) { console.error("in docker inspect: " + leaked.map(([k]) => k).join(", ")); process.exit(1); }
' "$WORK/expected.json" "$WORK/inspect.json" || fail "a secret value is in a container's configuration"
ok "no secret value in any container's configuration (docker inspect)"
finish
