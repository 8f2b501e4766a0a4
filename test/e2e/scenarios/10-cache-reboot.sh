#!/usr/bin/env bash
# With the override generated with --cache: the sidecar keeps an encrypted copy of the last set PostgreSQL was
# seen to accept, in a 0700 volume mounted on it alone, with no value readable. After `down` (the cache kept),
# `up -d` with Infisical unreachable starts web, worker and beat from the cache (/healthz source "cache"); when
# Infisical comes back with a rotated value they restart with it, in order. After `down -v` they stay gated.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
step "reboot with --cache: down, up -d while Infisical is unreachable → the consumers start from the cache"
use_layout seed seed-cache --cache
grep -q '^      SIDECAR_CACHE_DIR: /var/cache/infisical-sidecar$' "$WORK/override-seed-cache.yml" || fail "--cache: no SIDECAR_CACHE_DIR in the override"
dc up -d --wait fake-infisical >/dev/null
dc up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up (--cache)"; }
# role sync: a set becomes "last known good" only once PostgreSQL has been seen to accept its password (on a first
# start, after initdb: tens of seconds on a loaded host)
out=$(healthz_wait 120 'b.status === "ok" && b.postgres?.state === "in_step"') \
  || fail "--cache: PostgreSQL never seen to accept the password: status $(field status "$out"), postgres $(field postgres "$out")"
poll 20 eval '[ "$(cache_files)" -ge 1 ]' || fail "no cache file in ${PROJECT}_sidecar-cache after the first sync"
CACHE_DIR=$(cache_vol)
[ "$(stat -c '%a %u' "$CACHE_DIR")" = "700 65532" ] || fail "the cache volume is $(stat -c '%a %u' "$CACHE_DIR"), want 700 65532"
node -e '
  const fs = require("fs"), path = require("path"), dir = process.argv[1];
  const data = fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile()).map((f) => fs.readFileSync(path.join(dir, f)));
  const values = Object.values(JSON.parse(fs.readFileSync(process.argv[2], "utf8")));
  if (data.some((d) => values.some((v) => d.includes(v.split("\n")[0]) || d.includes(Buffer.from(v.split("\n")[0]).toString("base64"))))) process.exit(1);
' "$CACHE_DIR" "$WORK/expected.json" || fail "a secret value is readable in the cache file"
for c in $("$DOCKER" ps -q --filter "label=com.docker.compose.project=$PROJECT"); do
  [ "$("$DOCKER" inspect -f '{{.Name}}' "$c")" = "/${PROJECT}-secrets-1" ] && continue
  "$DOCKER" inspect -f '{{range .Mounts}}{{.Name}} {{end}}' "$c" | grep -q sidecar-cache && fail "$("$DOCKER" inspect -f '{{.Name}}' "$c") mounts the cache volume"
done
ok "--cache: ${PROJECT}_sidecar-cache (0700, uid 65532, mounted on the sidecar only) holds $(cache_files) file(s), no secret value readable in them"
dc logs --no-color >"$WORK/logs-before-down-1.log" 2>&1   # `down` removes the containers: finish checks these too
T0=$(now_ms)
dc_down || fail "compose down: $(tail -3 "$WORK/down.log")"
[ -n "$("$DOCKER" volume ls -q --filter name="${PROJECT}_sidecar-cache")" ] || fail "\`down\` removed the cache volume"
ok "\`docker compose down\` in $(( $(now_ms) - T0 )) ms: containers gone, the cache volume kept"
T0=$(now_ms)
# Infisical is unreachable: the fake is not brought back (--scale fake-infisical=0: `up` creates no container for it)
dc up -d --scale fake-infisical=0 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up without Infisical (--cache)"; }
UP_MS=$(( $(now_ms) - T0 ))
[ -z "$(cid fake-infisical)" ] || fail "the fake Infisical came back with up"
is_health secrets healthy || fail "sidecar not healthy from the cache: $(health secrets)"
[ "$(healthz_field source)" = cache ] || fail "/healthz source: $(healthz_field source), want cache"
VOL=$(volume_dir)
for svc in web worker beat; do
  poll 30 app_running $svc || fail "$svc's app is not running after the start from the cache"
  check_app $svc child
  ok "$svc started from the cache: $APP_OUT"
done
ok "\`up -d\` with Infisical unreachable returned after $UP_MS ms; sidecar healthy, /healthz source \"cache\"; web, worker, beat running with the cached values"
# the fake comes back with a rotated EMAIL_URL: the sidecar syncs from it, the consumers restart with it
for svc in web worker beat; do R0[$svc]=$(restarts $svc); done
rotate_in_seed /glitchtip/application EMAIL_URL "smtp://after%40reboot:c4che 'pw' \$y@smtp.example.test:2525"
T0=$(now_ms)
dc up -d --wait fake-infisical >/dev/null 2>&1 || fail "the fake Infisical did not come back"
for svc in web worker beat; do
  poll $((4 * REFRESH_S + POLL_S + DELAY_S[$svc] + 30)) restarted_once $svc \
    || fail "$svc did not restart with the rotated value after Infisical came back (restarts ${R0[$svc]} → $(restarts $svc))"
done
[ "$(healthz_field source)" = infisical ] || fail "/healthz source after Infisical came back: $(healthz_field source)"
for svc in web worker beat; do
  check_app $svc child
  ok "$svc restarted by itself $(( $(started_ms $svc) - T0 )) ms after Infisical came back: $APP_OUT (the rotated EMAIL_URL included)"
done
[ "$(started_ms web)" -lt "$(started_ms worker)" ] && [ "$(started_ms worker)" -lt "$(started_ms beat)" ] || fail "not restarted in the order web, worker, beat"
ok "/healthz source \"infisical\" again; web → worker → beat restarted in order, $(( $(started_ms worker) - $(started_ms web) )) and $(( $(started_ms beat) - $(started_ms worker) )) ms apart"


step "reboot with the cache volume wiped (\`down -v\`): the consumers stay gated"
dc logs --no-color >"$WORK/logs-before-down-2.log" 2>&1
dc_down -v || fail "compose down -v: $(tail -3 "$WORK/down.log")"
[ -z "$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "\`down -v\` left a volume"
ok "\`docker compose down -v\` removed ${PROJECT}_sidecar-cache"
# `up -d` waits for a healthy sidecar, which never comes (start_period 2m): it runs in the background while the
# sidecar fails its health check 4 times (8 s at 2 s: it has tried Infisical and has no cache), then is stopped
T0=$(now_ms)
timeout 120 $COMPOSE --project-name "$PROJECT" --project-directory "$WORK" --progress quiet --ansi never "${DC_FILES[@]}" \
  up -d --scale fake-infisical=0 >"$WORK/up.log" 2>&1 &
UP_PID=$!
failed_checks() { inspect secrets '{{if .State.Health}}{{range .State.Health.Log}}{{if ne .ExitCode 0}}x{{end}}{{end}}{{end}}' 2>/dev/null; }
poll 60 eval '[ -n "$(cid secrets)" ] && [ "$(failed_checks | wc -c)" -ge 4 ]' || fail "the sidecar did not fail its health check 4 times: $(health secrets)"
if ! kill -0 $UP_PID 2>/dev/null; then
  wait $UP_PID && fail "\`up -d\` succeeded without Infisical and without a cache"
fi
[ "$(inspect secrets '{{.State.Status}}')" = running ] && ! is_health secrets healthy || fail "sidecar: $(inspect secrets '{{.State.Status}}') $(health secrets)"
for svc in web worker beat postgres; do
  [ "$(inspect $svc '{{.State.Status}}')" = created ] || fail "$svc is $(inspect $svc '{{.State.Status}}') without secrets, want created (gated)"
done
ok "after $(( $(now_ms) - T0 )) ms (4 failed health checks) the sidecar is running, $(health secrets), /healthz status $(healthz_field status); web, worker, beat, postgres created, never started; \`up -d\` still waiting"
kill $UP_PID 2>/dev/null || true; wait $UP_PID 2>/dev/null || true

finish
