#!/usr/bin/env bash
# Docker end-to-end test (`npm run test:e2e`): the image, built offline from local stand-in base images, runs
# each GlitchTip layout with the override `compose-override` generates for it, one layout after another on one
# dockerd, sharing the images and the fake Infisical bundle. Each project is the layout's base file
# (test/fixtures/compose/<layout>.yml) + the override the image generates from `docker compose config --format
# json` of that base (as docs/production.md has operators do it) + an overlay from stand-ins.mjs (images only,
# and the fake Infisical server).
#
# The seed layout (web, worker, beat; postgres user glitchtip_maintainer) gets every scenario. Its override
# must equal the repository's compose.override.yml; it runs with --no-subpath, as this machine's Docker
# Engine 20.10 has no volume subpath (postgres then mounts the whole volume read-only). It asserts issue 3:
#   gating on the sidecar's health; every secret byte-exact in web/worker/beat (hostile values); postgres
#   initialised from keys/POSTGRES_PASSWORD and web connecting with the derived DATABASE_URL; the bounded
#   wait after a "reboot" (fail closed, then start once the file appears); staleness → unhealthy with files
#   intact → healthy again; a rotation reaching the files within one interval with /healthz's revision
#   bumped; `down -v` leaving no secret on disk. And issue 4's rotation paths:
#   socket-free: the consumers start through the sidecar's with-secrets.sh (WITH_SECRETS_RESTART=true, the
#   override's default), which runs the app as its child and exits 75 when the revision moves, so the restart
#   policy brings each service back with the new values, staggered; a restored file keeps the revision and
#   restarts nobody. Docker API: with compose.docker-api.yml the sidecar restarts `worker` itself through
#   the mounted socket, and nothing else of this project or of another one. Issue 18: another container on
#   the project's network reads http://secrets:8080/healthz; no host port is published.
#   Issue 16, PostgreSQL role sync (the override sets SIDECAR_POSTGRES_PASSWORD_KEY/URL; postgres runs with
#   log_statement=all, the stand-in's web, worker and beat each connect with DATABASE_URL at start): rotating
#   POSTGRES_PASSWORD in the fake (a hostile value), with no manual step, changes the role in PostgreSQL before
#   the files (the ALTER ROLE logged before "secrets written"; the old DATABASE_URL refused, the new accepted);
#   web, worker and beat restart once each, at once ("restarting in 0s": WITH_SECRETS_PROMPT_FILES skips the
#   stagger; each restart's delay reported) and reconnect. A probe client (probe-db.sh, a container on the
#   project's network with the volume mounted) opens a new connection with the current keys/DATABASE_URL every
#   200 ms across the switch: a refusal only for an attempt that read the old URL before the files' swap and
#   was still connecting after the ALTER ROLE; count and window reported. PostgreSQL's log holds
#   `ALTER ROLE CURRENT_USER PASSWORD 'SCRAM-SHA-256$…'` and no password, plain or URL-encoded. Then the
#   role's password changed by hand to an unknown value and another rotation: the old set stays, /healthz
#   degraded with SIDECAR_POSTGRES_ROLE_REFUSED, role_checks_total{result="refused"} grows with the retries;
#   the role set by hand to the new value → published, consumers restart.
# Then issue 15's reboot with the last-known-good cache (the seed layout, override generated with --cache,
# project <prefix>-cache): `down` keeps the cache volume; `up -d` with the fake Infisical gone starts web,
# worker, beat from the cache (/healthz source "cache"); the fake comes back with a rotated value and they
# restart with it. Issue 16's reboot after an offline rotation: `down` (cache and PostgreSQL data kept),
# POSTGRES_PASSWORD rotated in the fake's seed (non-ASCII), `up -d`: the sidecar, unable to reach PostgreSQL
# (gated on its health), turns healthy on the cached set, postgres starts, then the role is changed and the
# new set published (status ok, lastResult set), the consumers reconnect with it; the same with the cache
# volume removed (`docker volume rm`, PostgreSQL data kept): the new set goes out, /healthz names
# SIDECAR_POSTGRES_PASSWORD_UNKNOWN with ALTER ROLE in its hint, and the manual fix brings it in step. Every
# wait is bounded. After `down -v` (cache wiped) the `up -d` without Infisical leaves them gated.
# Then GlitchTip's own sample layouts (issue 13), checking only what differs: 4.x/5.x (web, worker with
# embedded beat, one-shot migrate), 6.0 (web, worker, migrate), all_in_one (one web): every GlitchTip service
# starts after the sidecar is healthy, with the byte-exact values; migrate completes against PostgreSQL with
# the DATABASE_URL derived from the sample's postgres user; a rotation restarts the long-running services,
# staggered, and never migrate.
#
# Installs what it needs with apt, starts dockerd only when none answers and stops only the one it started,
# builds the stand-ins only when missing (scripts/docker/stand-ins.sh), and removes every container, network
# and volume of its projects on any exit. Env for debugging: E2E_KEEP_WORK=1 keeps the work directory (it holds
# no secret of anyone's: the seed is test/e2e/seed.json); E2E_KEEP_UP=1 leaves a failed run's project up;
# E2E_SIDECAR_IMAGE=name tests that image instead of building one; E2E_LAYOUTS="glitchtip-6" runs only those
# sample layouts after the seed one (E2E_LAYOUTS=none: none).
set -euo pipefail
{ # the whole script is one compound command: bash reads all of it before running any, so editing this file
  # during a run cannot change what the run executes (the closing brace is the last line)
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E/../.." && pwd)
source "$REPO_ROOT/scripts/docker/lib.sh"

PROJECT_PREFIX=${E2E_PROJECT:-infisical-sidecar-e2e}
PROJECT=$PROJECT_PREFIX   # the project of the layout being run (the seed layout's is the prefix itself)
FIXTURES=$REPO_ROOT/test/fixtures/compose
SAMPLE_LAYOUTS=${E2E_LAYOUTS:-glitchtip-5 glitchtip-6 glitchtip-6-all-in-one}
[ "$SAMPLE_LAYOUTS" != none ] || SAMPLE_LAYOUTS=
DC_FILES=()          # -f base -f override -f stand-ins of the layout being run
IMG_GLITCHTIP=local/glitchtip-standin:e2e
REFRESH_S=2          # SIDECAR_REFRESH_INTERVAL in seconds (jitter ±10 %)
STALENESS_S=6        # SIDECAR_MAX_STALENESS in seconds
WAIT_S=6             # SECRETS_WAIT_SECONDS: the wrappers' bounded wait
FIRST_SYNC_DELAY_MS=3000
POLL_S=1             # WITH_SECRETS_POLL: how often the restart-mode wrappers read the revision
# WITH_SECRETS_RESTART_DELAY: the restart stagger (production: 0/20/40, divided by stand-ins.mjs' TIME_SCALE).
# Seconds apart, as each start time also varies by a poll (1 s), the wrapper's stop loop (up to 1 s) and Docker's
# restart (0.1-2 s on a loaded host).
declare -A DELAY_S=([web]=0 [worker]=4 [beat]=8)
# the app's argv as the kernel runs it (the scripts start with #!/bin/sh): what each service runs
declare -A WANT_CMD=([web]="/bin/sh ./bin/start.sh" [worker]="/bin/sh ./bin/run-celery.sh" [beat]="/bin/sh ./bin/run-beat.sh")
EXTRA_FILES=()       # compose.docker-api.yml, for the Docker API scenario
LAYOUT_MODEL=        # a sample layout's base model (check.mjs env reads its settings and database from it)
DECOY=               # a container of another project, for the last scenario
PROBE=               # the database probe client of the POSTGRES_PASSWORD rotation
PASSED=0
COMPOSE=
WORK=
STEP_NAME=
STEP_T0=0

# ---------------------------------------------------------------- reporting
step() {
  step_end
  STEP_NAME=$1 STEP_T0=$(now_ms)
  say "== $STEP_NAME"
}
step_end() {
  [ -z "$STEP_NAME" ] || printf '[%s]    step took %d ms\n' "$(elapsed)" $(( $(now_ms) - STEP_T0 )) >&2
  STEP_NAME=
}
ok() { PASSED=$((PASSED + 1)); printf '[%s]    ok  %s\n' "$(elapsed)" "$*" >&2; }
fail() {
  printf '[%s]    FAIL %s\n' "$(elapsed)" "$*" >&2
  echo "e2e: $PASSED passed, 1 failed"
  exit 1
}
# poll SECONDS CMD...: runs CMD every 0.2 s until it succeeds (0) or SECONDS pass (1)
poll() {
  local deadline=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@"; do [ "$(now_ms)" -lt "$deadline" ] || return 1; sleep 0.2; done
}

# ---------------------------------------------------------------- compose and container helpers
dc() {
  $COMPOSE --project-name "$PROJECT" --project-directory "$WORK" --progress quiet --ansi never \
    "${DC_FILES[@]}" "${EXTRA_FILES[@]}" "$@"
}
cid() { "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1"; }
inspect() { "$DOCKER" inspect -f "$2" "$(cid "$1")"; }
health() { inspect "$1" '{{if .State.Health}}{{.State.Health.Status}}{{end}}'; }
health_log() { inspect secrets '{{range .State.Health.Log}}{{.ExitCode}} {{.End.UnixNano}}{{"\n"}}{{end}}'; }  # "EXIT NS" per check
# first_healthy_ms SINCE_MS: when (ms) the sidecar's container first turned healthy since then, from Docker's
# `health_status: healthy` event (the health log keeps only the last 5 checks: on a loaded machine `up` may
# return after the first healthy one has rotated out of it)
first_healthy_ms() {
  "$DOCKER" events --since "$(( $1 / 1000 - 1 ))" --until "$(( $(date +%s) + 1 ))" --filter type=container \
    --filter "container=$(cid secrets)" --format '{{.TimeNano}} {{.Status}}' \
    | awk '$2 == "health_status:" && $3 == "healthy" { print substr($1, 1, 13); exit }'
}
is_health() { [ "$(health "$1")" = "$2" ]; }
started_ms() { date -d "$(inspect "$1" '{{.State.StartedAt}}')" +%s%3N; }
finished_ms() { date -d "$(inspect "$1" '{{.State.FinishedAt}}')" +%s%3N; }
restarts() { inspect "$1" '{{.RestartCount}}'; }
fake() { "$DOCKER" exec -i "$(cid fake-infisical)" node /fake/fake-ctl.mjs "$@"; }
healthz() { # the sidecar's /healthz body, asked from inside its own container (there is no shell, but node)
  "$DOCKER" exec "$(cid secrets)" node -e \
    'fetch("http://127.0.0.1:8080/healthz").then(async (r) => process.stdout.write(await r.text()))'
}
healthz_field() { healthz | node "$E2E/check.mjs" healthz "$1"; }
pid1_cmdline() { "$DOCKER" exec "$(cid "$1")" cat /proc/1/cmdline | tr '\0' ' '; }
# Every process of a container, one line each: pid, ppid, argv and environment (base64; "-" when gone or
# unreadable). The consumers' processes run as the image's user, as `docker exec` does, so all are readable.
PROC_DUMP='for d in /proc/[0-9]*; do
  p=${d#/proc/}
  pp=$(sed -n "s/^PPid:[[:space:]]*//p" "$d/status" 2>/dev/null) || continue
  c=$(base64 -w0 "$d/cmdline" 2>/dev/null) || c=
  e=$(base64 -w0 "$d/environ" 2>/dev/null) || e=
  echo "$p ${pp:--} ${c:--} ${e:--}"
done'
# app_snapshot SVC: finds SVC's app process — PID 1 when the wrapper exec'd it, PID 1's child when PID 1 is
# the restart-mode wrapper — writes its environment to $WORK/environ-SVC and prints "MODE PID PID1-ARGV"
# (MODE exec|child). Fails when any process's argv holds a secret; exit 3 when the app is not (yet) there.
app_snapshot() {
  local dump
  dump=$("$DOCKER" exec "$(cid "$1")" sh -c "$PROC_DUMP") || return 3
  node "$E2E/check.mjs" procs "$WORK/expected.json" "${WANT_CMD[$1]}" "$WORK/environ-$1" <<<"$dump"
}
app_running() { app_snapshot "$1" >/dev/null 2>&1; }
# check_app SVC MODE [EXPECTED]: SVC's app runs as MODE, no secret in any argv, and the app's environment holds
# every expected value byte-exact (EXPECTED defaults to $WORK/expected.json). Result in $APP_OUT.
APP_OUT=
check_app() {
  local svc=$1 mode=$2 expected=${3:-$WORK/expected.json} out m pid pid1
  out=$(app_snapshot "$svc") || fail "$svc: the app's process: $out"
  read -r m pid pid1 <<<"$out"
  [ "$m" = "$mode" ] || fail "$svc: the app is pid $pid ($m; PID 1: $pid1), want $mode"
  out=$(node "$E2E/check.mjs" env "$expected" "$WORK/environ-$svc" "$VOL" ${LAYOUT_MODEL:+"$LAYOUT_MODEL" "$svc"}) || fail "$svc: the app's environment"
  APP_OUT="$out (app: $([ "$m" = exec ] && echo "PID 1" || echo "pid $pid, child of PID 1 = $pid1"))"
}
# exit_codes SVC SINCE_MS: the exit codes of SVC's container since then (Docker's `die` events), space-separated
exit_codes() {
  "$DOCKER" events --since "$(( $2 / 1000 - 1 ))" --until "$(date +%s)" --filter "container=$(cid "$1")" \
    --filter event=die --format '{{.Actor.Attributes.exitCode}}' | xargs
}
# log_ms SVC TEXT: when (ms) SVC's log last printed a line starting with TEXT (Docker's receive time)
log_ms() {
  local t; t=$("$DOCKER" logs -t "$(cid "$1")" 2>&1 | grep -F -- "Z $2" | tail -1 | cut -d' ' -f1)
  [ -n "$t" ] && date -d "$t" +%s%3N
}
# (grep reads the whole log: with -q it would stop at the first match, and pipefail would then see docker logs
# killed by SIGPIPE on a long log)
log_has() { "$DOCKER" logs "$(cid "$1")" 2>&1 | grep -- "$2" >/dev/null; }
volume_dir() { "$DOCKER" volume inspect -f '{{.Mountpoint}}' "${PROJECT}_glitchtip-secrets"; }
# every entry of the volume (name, type, symlink target, mode) and the content of every file
files_digest() { find "$VOL" -printf '%P %y %l %m\n' | sort; find "$VOL" -type f -print0 | sort -z | xargs -0 sha256sum; }
# rev_on_volume: the revision in the name of the version `..data` points to (what the wrappers read)
rev_on_volume() { local r; r=$(readlink "$VOL/..data") && r=${r#..rev-} && echo $((10#${r%%-*})); }
# restart_state SVC...: "svc:RestartCount:StartedAt" for each (what a restart changes)
restart_state() { local s; for s in "$@"; do printf '%s:%s ' "$s" "$(inspect "$s" '{{.RestartCount}}:{{.State.StartedAt}}')"; done; }
# connected_this_run SVC: SVC's current run (since its last start) connected to postgres with its DATABASE_URL
connected_this_run() {
  "$DOCKER" logs --since "$(inspect "$1" '{{.State.StartedAt}}')" "$(cid "$1")" 2>&1 | grep '^standin db: glitchtip_maintainer glitchtip$' >/dev/null
}

# ---------------------------------------------------------------- PostgreSQL role sync helpers
# healthz_wait SECONDS CONDITION: reads /healthz inside the sidecar's container every 100 ms until CONDITION (a JS
# expression over b, the body, and s, the HTTP status) holds; prints "STATUS BODY" of the first body that meets it
# (of the last one read, and fails, after SECONDS). One `docker exec`, so a state that lasts a second is seen.
healthz_wait() {
  "$DOCKER" exec "$(cid secrets)" node -e '
    const [seconds, condition] = process.argv.slice(1), until = Date.now() + Number(seconds) * 1000;
    const holds = new Function("b", "s", `return (${condition});`);
    (async () => {
      let last = "- {}";
      for (;;) {
        try {
          const r = await fetch("http://127.0.0.1:8080/healthz"), text = await r.text();
          last = `${r.status} ${text}`;
          if (holds(JSON.parse(text), r.status)) return console.log(last);
        } catch {}
        if (Date.now() > until) { console.log(last); process.exit(1); }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();' "$1" "$2"
}
field() { node "$E2E/check.mjs" healthz "$1" <<<"${2#* }"; }   # field NAME "STATUS BODY": one field of healthz_wait's body
metrics() {
  "$DOCKER" exec "$(cid secrets)" node -e 'fetch("http://127.0.0.1:8080/metrics").then(async (r) => process.stdout.write(await r.text()))'
}
# role_checks RESULT: infisical_sidecar_postgres_role_checks_total{result="RESULT"} (0 when absent)
role_checks() { metrics | awk -v m="infisical_sidecar_postgres_role_checks_total{result=\"$1\"}" '$1 == m { v = $2 } END { print v + 0 }'; }
# pg_login URL: a fresh TCP login (scram-sha-256) with that DATABASE_URL, from the postgres container (it stays up)
pg_login() { "$DOCKER" exec "$(cid postgres)" psql "$1" -w -tAc 'select 1' >/dev/null 2>&1; }
# pg_set_role_password VALUE: what an operator does by hand — ALTER ROLE as the superuser over the container's
# local socket — with log_statement off for that session, so that the plaintext does not reach the log that
# runs with log_statement=all here (the SQL on stdin: no value in any argv)
pg_set_role_password() {
  node -e 'const q = "\x27"; process.stdout.write(`SET log_statement = ${q}none${q};\nALTER ROLE glitchtip_maintainer PASSWORD ${q}${process.argv[1].replaceAll(q, q + q)}${q};\n`)' -- "$1" \
    | "$DOCKER" exec -i "$(cid postgres)" psql -v ON_ERROR_STOP=1 -q -U glitchtip_maintainer -d glitchtip >/dev/null
}
# pg_log_clean VALUE...: PostgreSQL's log (log_statement=all) holds none of the values, plain or as a URL
# encodes them (encodeURIComponent, and the password part of keys/DATABASE_URL as the sidecar encoded it)
pg_log_clean() {
  "$DOCKER" logs "$(cid postgres)" 2>&1 | node -e '
    const log = require("fs").readFileSync(0, "utf8"), found = [];
    for (const [i, v] of process.argv.slice(1).entries()) {
      const forms = [v, encodeURIComponent(v), encodeURIComponent(v).replace(/%20/g, "+")];
      if (forms.some((f) => f.length >= 6 && log.includes(f))) found.push(`value #${i + 1}`);
    }
    if (found.length) { console.error(`in the PostgreSQL log: ${found.join(", ")}`); process.exit(1); }' "$@"
}
# alter_role_lines: how many ALTER ROLE statements with a SCRAM verifier PostgreSQL logged (role sync sends only those)
alter_role_lines() { "$DOCKER" logs "$(cid postgres)" 2>&1 | grep -cF "statement: ALTER ROLE CURRENT_USER PASSWORD 'SCRAM-SHA-256\$" || true; }
# url_password URL: the password part of a DATABASE_URL as written (percent-encoded)
url_password() { local u=${1#*://}; u=${u%@*}; printf '%s' "${u#*:}"; }
# sidecar_log_ms MSG [REVISION]: when (ms, the sidecar's own clock) it last logged MSG (for REVISION)
sidecar_log_ms() {
  "$DOCKER" logs "$(cid secrets)" 2>/dev/null | node -e '
    const [msg, rev] = process.argv.slice(1);
    let t;
    for (const l of require("fs").readFileSync(0, "utf8").split("\n")) {
      try { const j = JSON.parse(l); if (j.msg === msg && (rev === undefined || j.revision === Number(rev))) t = Date.parse(j.time); } catch {}
    }
    if (t === undefined) process.exit(1);
    console.log(t);' "$@"
}

# ---------------------------------------------------------------- cleanup: everything this run created
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  step_end
  [ -z "$DECOY" ] || "$DOCKER" rm -f "$DECOY" >/dev/null 2>&1 || true
  [ -z "$PROBE" ] || "$DOCKER" rm -fv "$PROBE" >/dev/null 2>&1 || true
  if [ -n "$COMPOSE" ] && [ -n "$WORK" ] && [ -f "$WORK/.env" ]; then
    if [ $rc != 0 ]; then
      say "logs of the failed run (last 30 lines per service):"
      dc logs --no-color --tail 30 >&2 2>&1 || true
      dc ps -a >&2 2>&1 || true
    fi
    if [ $rc != 0 ] && [ "${E2E_KEEP_UP:-0}" = 1 ]; then
      say "E2E_KEEP_UP=1: project $PROJECT left running; remove it with: (cd $WORK && $COMPOSE -p $PROJECT down -v)"
      exit $rc
    fi
    dc down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || say "compose down failed"
  fi
  [ -z "$WORK" ] || [ "${E2E_KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
  if [ -n "$DOCKERD_STARTED_PID" ]; then dockerd_stop "$DOCKERD_STARTED_PID"; say "stopped the dockerd this run started"; fi
  say "e2e total $(elapsed)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ================================================================ 1. prerequisites
step "prerequisites: packages, dockerd, Compose v2, stand-in images"
[ "$(id -u)" = 0 ] || die "run as root (dockerd, debootstrap, reading /var/lib/docker)"
timed "apt: docker.io debootstrap curl (if missing)" ensure_docker_packages
timed "dockerd" dockerd_start
[ -z "$DOCKERD_STARTED_PID" ] && say "dockerd was already running (left running)" || say "started dockerd pid $DOCKERD_STARTED_PID (stopped at the end)"
COMPOSE=$(timed "Compose v2" "$REPO_ROOT/scripts/docker/compose-v2.sh")
say "compose: $COMPOSE ($($COMPOSE version --short))"
timed "stand-in base images" "$REPO_ROOT/scripts/docker/stand-ins.sh"

WORK=$(mktemp -d /tmp/infisical-sidecar-e2e.XXXXXX)
chmod 0755 "$WORK"
# a previous run killed with SIGKILL may have left its projects behind
for p in "$PROJECT_PREFIX" "$PROJECT_PREFIX-cache" $(for l in $SAMPLE_LAYOUTS; do echo "$PROJECT_PREFIX-$l"; done); do
  if [ -n "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$p")$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$p")" ]; then
    say "removing leftovers of an earlier run of project $p"
    "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r "$DOCKER" rm -f >/dev/null
    "$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$p" | xargs -r "$DOCKER" volume rm >/dev/null
    "$DOCKER" network ls -q --filter "label=com.docker.compose.project=$p" | xargs -r "$DOCKER" network rm >/dev/null
  fi
done
"$DOCKER" ps -aq --filter "label=infisical-sidecar-e2e.decoy-of=$PROJECT" | xargs -r "$DOCKER" rm -f >/dev/null
"$DOCKER" ps -aq --filter "label=infisical-sidecar-e2e.probe-of=$PROJECT" | xargs -r "$DOCKER" rm -fv >/dev/null

# ================================================================ 2. images
step "images: the sidecar (offline build), GlitchTip stand-in, fake Infisical bundle"
if [ -n "${E2E_SIDECAR_IMAGE:-}" ]; then   # test an image built elsewhere instead
  IMG_SIDECAR=$E2E_SIDECAR_IMAGE; have_image "$IMG_SIDECAR" || die "no image $IMG_SIDECAR"
else
  timed "docker build --network=none (sidecar)" "$REPO_ROOT/scripts/docker/build-image.sh" "$IMG_SIDECAR" >/dev/null
fi
timed "docker build --network=none (GlitchTip stand-in)" "$DOCKER" build -q --network=none \
  --build-arg BASE_IMAGE="$IMG_POSTGRES" -t "$IMG_GLITCHTIP" "$E2E/standin" >/dev/null
size() { "$DOCKER" image inspect -f '{{.Size}}' "$1"; }
IMAGE_BYTES=$(size "$IMG_SIDECAR") BASE_BYTES=$(size "$IMG_DISTROLESS")
say "image $IMG_SIDECAR: $((IMAGE_BYTES / 1000)) kB = base $IMG_DISTROLESS $((BASE_BYTES / 1000)) kB + $(((IMAGE_BYTES - BASE_BYTES) / 1000)) kB"
[ $((IMAGE_BYTES - BASE_BYTES)) -lt 15000000 ] || fail "image adds more than 15 MB to its base"
ok "image adds $(((IMAGE_BYTES - BASE_BYTES) / 1000)) kB to its base (limit 15 MB)"
[ "$("$DOCKER" image inspect -f '{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{.Config.StopSignal}}' "$IMG_SIDECAR")" \
  = '65532:65532|["CMD","node","/app/main.js","healthcheck"]|SIGTERM' ] || fail "image USER/HEALTHCHECK/STOPSIGNAL"
"$DOCKER" run --rm --network=none --entrypoint /bin/sh "$IMG_SIDECAR" -c true >/dev/null 2>&1 && fail "the runtime image has a shell"
ok "image: non-root 65532, exec-form HEALTHCHECK, STOPSIGNAL SIGTERM, no shell"
# What one HEALTHCHECK costs (a node start every interval, for the life of the container): the image's
# program run on the host against a closed port, CPU seconds, vs node doing nothing.
mkdir -p "$WORK/app"
c=$("$DOCKER" create "$IMG_SIDECAR") && "$DOCKER" cp "$c:/app/." "$WORK/app/" && "$DOCKER" rm "$c" >/dev/null
cpu() { local TIMEFORMAT='%U %S'; { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ printf "%.2f", $1 + $2 }'; }
HC_CPU=$(SIDECAR_HEALTH_PORT=9 cpu node "$WORK/app/main.js" healthcheck) NODE_CPU=$(cpu node -e 0)
say "one healthcheck costs ${HC_CPU} s CPU (node alone: ${NODE_CPU} s); every 2 s that is $(awk -v c="$HC_CPU" 'BEGIN { printf "%.0f", c / 2 * 100 }') % of a core"
awk -v c="$HC_CPU" -v n="$NODE_CPU" 'BEGIN { exit !(c > n + 0.2) }' \
  && say "WARNING: the healthcheck subcommand loads the whole program; it should import only what it needs"

mkdir -p "$WORK/fake"
install -d -m 0700 "$WORK/secrets"   # as docs/production.md §1: the host directory need not be open to the container user
timed "esbuild fake Infisical" "$REPO_ROOT/node_modules/.bin/esbuild" "$REPO_ROOT/test/fake-infisical/main.ts" \
  --bundle --platform=node --format=esm --target=node20 --log-level=warning --outfile="$WORK/fake/fake-infisical.js" \
  --banner:js="import{createRequire}from'module';const require=createRequire(import.meta.url);"
cp "$E2E/seed.json" "$E2E/fake-ctl.mjs" "$WORK/fake/"
chmod -R a+rX "$WORK/fake"

# The machine identity's credentials as the production recipe has them: host files readable by uid 65532 only
# (Compose bind-mounts them with the host owner and mode). Trailing newline as `gopass show` would print it.
node -e 'const s = require(process.argv[1]); process.stdout.write(s.identities[0].clientId + "\n")' "$E2E/seed.json" >"$WORK/secrets/infisical-client-id"
node -e 'const s = require(process.argv[1]); process.stdout.write(s.identities[0].clientSecret + "\n")' "$E2E/seed.json" >"$WORK/secrets/infisical-client-secret"
chown 65532:0 "$WORK"/secrets/*; chmod 0400 "$WORK"/secrets/*
node "$E2E/check.mjs" flat "$E2E/seed.json" >"$WORK/expected.json"

# The project's .env: what an operator writes (non-secret settings), plus the test's stand-in images.
cat >"$WORK/.env" <<EOF
INFISICAL_SIDECAR_IMAGE=$IMG_SIDECAR
INFISICAL_SITE_URL=http://fake-infisical:8090
SIDECAR_ALLOW_INSECURE_HTTP=true
INFISICAL_PROJECT_ID=$(node -p 'require(process.argv[1]).projects[0].id' "$E2E/seed.json")
INFISICAL_ENVIRONMENT=prod
SIDECAR_REFRESH_INTERVAL=${REFRESH_S}s
SIDECAR_MAX_STALENESS=${STALENESS_S}s
SECRETS_WAIT_SECONDS=$WAIT_S
E2E_IMAGE_GLITCHTIP=$IMG_GLITCHTIP
E2E_IMAGE_POSTGRES=$IMG_POSTGRES
E2E_IMAGE_DEBIAN=$IMG_DEBIAN
E2E_IMAGE_NODE=$IMG_NODE
E2E_FAKE_DIR=$WORK/fake
E2E_WITH_SECRETS_POLL=$POLL_S
EOF
cp "$WORK/.env" "$WORK/env.base"   # each sample layout starts from it (the Docker API scenario appends to .env)

# use_layout NAME: generates NAME's override with the image from `docker compose config --format json` of its
# base file, as an operator does (docs/production.md), and its stand-ins overlay; points dc at base + override
# + stand-ins. The warnings are in $WORK/warnings-NAME.txt. use_layout NAME KEY FLAGS...: more generator flags
# (e.g. --cache), its files named after KEY instead of NAME.
use_layout() {
  local name=$1 base=$FIXTURES/$1.yml key=${2:-$1}
  shift; [ $# = 0 ] || shift
  $COMPOSE --project-name "$PROJECT" --project-directory "$WORK" -f "$base" config --format json >"$WORK/model-$key.json" \
    || fail "$name: docker compose config of the base file"
  timed "compose-override${*:+ $*} in the image ($name)" "$DOCKER" run --rm -i --network=none "$IMG_SIDECAR" compose-override --no-subpath "$@" \
    <"$WORK/model-$key.json" >"$WORK/override-$key.yml" 2>"$WORK/warnings-$key.txt" \
    || { cat "$WORK/warnings-$key.txt" >&2; fail "$name: compose-override${*:+ $*} in the image"; }
  DC_FILES=(-f "$base" -f "$WORK/override-$key.yml")
  dc config --format json | node "$E2E/stand-ins.mjs" >"$WORK/stand-ins-$key.yml" || fail "$name: compose config with the override"
  DC_FILES+=(-f "$WORK/stand-ins-$key.yml")
  dc config -q || fail "$name: compose config with the override and the stand-ins"
}
"$DOCKER" run --rm -i --network=none "$IMG_SIDECAR" compose-override <"$FIXTURES/seed.yml" >"$WORK/override-seed-file.yml" 2>/dev/null \
  || fail "compose-override in the image, from the seed's compose file"
cmp -s "$WORK/override-seed-file.yml" "$REPO_ROOT/compose.override.yml" \
  || fail "the image's compose-override of test/fixtures/compose/seed.yml differs from compose.override.yml: $(diff "$WORK/override-seed-file.yml" "$REPO_ROOT/compose.override.yml" | head -5)"
use_layout seed
# the one difference --no-subpath makes: postgres mounts the whole volume (the comment and the mount lines)
diff "$WORK/override-seed.yml" "$REPO_ROOT/compose.override.yml" | grep '^[<>]' | grep -v '^[<>] *#' \
  | grep -vxE '[<>] +(- type: volume|source: glitchtip-secrets|target: /run/glitchtip-secrets/keys|read_only: true|volume:|subpath: keys|- glitchtip-secrets:/run/glitchtip-secrets:ro)' \
  >"$WORK/seed-override.diff" && fail "the seed's generated override differs from compose.override.yml beyond the postgres mount: $(head -5 "$WORK/seed-override.diff")"
ok "compose-override in the image: from seed.yml byte-identical to compose.override.yml; from \`docker compose config --format json\` the same but for --no-subpath's postgres mount; compose config OK"

# ================================================================ 3. up: gating
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
# the first sync takes >= FIRST_SYNC_DELAY_MS (both folder requests delayed), so gating is observable
echo "{\"route\":\"list\",\"kind\":\"latency\",\"ms\":$FIRST_SYNC_DELAY_MS,\"times\":2}" | fake POST /__fake/faults - >/dev/null
UP_T0=$(now_ms)
dc up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up"; }
UP_RETURNED=$(( $(now_ms) - UP_T0 ))
is_health secrets healthy || fail "sidecar not healthy after up: $(health secrets)"
SIDECAR_START=$(started_ms secrets)
# the first successful health check, from the health log (up returns right after it, so it is still there)
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
# Issue 18: another container on the project's network reads /healthz by service name; the host gets no port.
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

# ================================================================ 4. what the consumers see
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

# ================================================================ 5. postgres
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

# ================================================================ 6. outage past the staleness bound
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

# ================================================================ 6b. self-healing keeps the revision
step "self-healing: links deleted on the volume are restored with the same revision; nobody restarts"
REV=$(healthz_field revision) DATA=$(readlink "$VOL/..data")
[ "$(rev_on_volume)" = "$REV" ] || fail "..data → $DATA, but /healthz says revision $REV"
STATE_BEFORE=$(restart_state web worker beat)
changed_lines() { local s; for s in web worker beat; do printf '%s:%s ' $s "$("$DOCKER" logs "$(cid $s)" 2>&1 | grep -c '^with-secrets: secrets changed')"; done; }
CHANGED_LINES=$(changed_lines)
# right after a refresh, so that the watcher (not the next refresh, which would also repair the links with
# the same revision) most likely does it; both are the sidecar's self-healing
LAST=$(healthz_field lastSuccessAt)
poll $((3 * REFRESH_S)) eval '[ "$(healthz_field lastSuccessAt)" != "$LAST" ]' || fail "no refresh within $((3 * REFRESH_S)) s"
T0=$(now_ms) SINCE=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
rm "$VOL/secrets.env" "$VOL/..data"   # as root on the host, through the volume's mountpoint
restored() { [ -s "$VOL/secrets.env" ] && [ -e "$VOL/..data" ] && [ "$(readlink "$VOL/..data")" != "$DATA" ]; }
poll 10 restored || fail "secrets.env and ..data were not restored within 10 s"
RESTORE_MS=$(( $(now_ms) - T0 ))
restored_by() {   # the sidecar's log since the deletion: the watcher's repair, or a refresh that rewrote the links
  "$DOCKER" logs --since "$SINCE" "$(cid secrets)" 2>/dev/null | node -e '
    const lines = require("fs").readFileSync(0, "utf8").split("\n").map((l) => { try { return JSON.parse(l); } catch { return {}; } });
    const rev = Number(process.argv[1]);
    if (lines.some((j) => j.msg === "output files were deleted or modified by someone else; restored from the last good set")) console.log("the watcher");
    else if (lines.some((j) => j.msg === "secrets written" && j.revision === rev && j.changedKeys?.length === 0)) console.log("the next refresh");
    else process.exit(1);' "$REV"
}
BY=$(poll 15 restored_by) || fail "the sidecar logged no restoration"
out=$(node "$E2E/check.mjs" files "$WORK/expected.json" "$VOL") || fail "files after the restoration"
[ "$(rev_on_volume)" = "$REV" ] && [ "$(healthz_field revision)" = "$REV" ] \
  || fail "the restoration moved the revision: $REV → ..data $(readlink "$VOL/..data"), /healthz $(healthz_field revision)"
ok "deleted secrets.env and ..data restored by $BY after $RESTORE_MS ms as a new version with the same revision ($DATA → $(readlink "$VOL/..data")); $out"
sleep $((2 * POLL_S + 1))   # two polls of every wrapper: one that saw a change has logged it by now
[ "$(changed_lines)" = "$CHANGED_LINES" ] || fail "a wrapper saw a change after the restoration: $CHANGED_LINES → $(changed_lines)"
[ "$(restart_state web worker beat)" = "$STATE_BEFORE" ] || fail "a consumer restarted after the restoration: $STATE_BEFORE → $(restart_state web worker beat)"
ok "no wrapper saw a change, no consumer restarted ($((2 * POLL_S + 1)) s later; restart counts and start times unchanged)"

# ================================================================ 7. rotation
step "rotation: a new EMAIL_URL in the fake reaches the files within one interval, then each app by itself, staggered"
declare -A R0 F1 S1 D1
for svc in web worker beat; do R0[$svc]=$(restarts $svc); done
NEW_EMAIL_URL="smtp://rotated%40app:n3w 'pw' \$x \"q\"@smtp.example.test:2525"
node -e 'const f = process.argv[1], e = require(f); e.EMAIL_URL = process.argv[2]; require("fs").writeFileSync(f, JSON.stringify(e))' \
  "$WORK/expected.json" "$NEW_EMAIL_URL"
REV_BEFORE=$(healthz_field revision)
T_PUT=$(now_ms)   # a sync may finish with the new value before `docker exec` of the PUT has returned
node -e 'process.stdout.write(JSON.stringify({ environment: "prod", path: "/glitchtip/application", key: "EMAIL_URL", value: process.argv[1] }))' \
  "$NEW_EMAIL_URL" | fake PUT /__fake/secrets - >/dev/null
T0=$(now_ms)   # the fake has the new value (measured from here: docker exec's start-up is not the sidecar's latency)
new_value_in_files() { [ "$(cat "$VOL/keys/EMAIL_URL")" = "$NEW_EMAIL_URL" ]; }
poll $((3 * REFRESH_S)) new_value_in_files || fail "the rotated EMAIL_URL did not reach keys/EMAIL_URL"
ROTATION_MS=$(( $(now_ms) - T0 ))
# one interval, its +10 % jitter, and 2 s to fetch, write and notice (margin for a loaded CI machine; still less
# than two intervals, so a missed refresh fails it)
LIMIT_MS=$((REFRESH_S * 1100 + 2000))
[ "$ROTATION_MS" -le "$LIMIT_MS" ] || fail "rotation took $ROTATION_MS ms, more than one refresh interval ($LIMIT_MS ms)"
out=$(node "$E2E/check.mjs" files "$WORK/expected.json" "$VOL") || fail "files after rotation"
REV_AFTER=$(healthz_field revision)
LAST_SUCCESS=$(healthz_field lastSuccessAt)
[ "$REV_AFTER" = $((REV_BEFORE + 1)) ] || fail "/healthz revision $REV_BEFORE → $REV_AFTER, want +1"
[ "$(date -d "$LAST_SUCCESS" +%s%3N)" -ge "$T_PUT" ] || fail "/healthz lastSuccessAt $LAST_SUCCESS is older than the rotation"
ok "rotated value in the files after $ROTATION_MS ms (limit $LIMIT_MS ms); $out; /healthz revision $REV_BEFORE → $REV_AFTER, lastSuccessAt $LAST_SUCCESS"
# No manual step: each wrapper sees the new revision, waits its delay, stops the app and exits 75; the restart
# policy starts the container again, and the wrapper there exports the new values.
restarted_once() { [ "$(restarts "$1")" = $((R0[$1] + 1)) ] && app_running "$1"; }
for svc in web worker beat; do
  poll $((POLL_S + DELAY_S[$svc] + 20)) restarted_once $svc \
    || fail "$svc did not restart by itself (restarts ${R0[$svc]} → $(restarts $svc), $(inspect $svc '{{.State.Status}}'))"
done
for svc in web worker beat; do
  [ "$(restarts $svc)" = $((R0[$svc] + 1)) ] || fail "$svc restarted $(( $(restarts $svc) - R0[$svc] )) times, want once"
  S1[$svc]=$(started_ms $svc) F1[$svc]=$(finished_ms $svc)
  D1[$svc]=$(log_ms $svc "with-secrets: secrets changed (revision $REV_BEFORE -> $REV_AFTER); restarting in ${DELAY_S[$svc]}s") \
    || fail "$svc's wrapper did not log the change $REV_BEFORE -> $REV_AFTER with its delay ${DELAY_S[$svc]}s"
  [ "$(exit_codes $svc "$T0")" = 75 ] || fail "$svc's container exited with '$(exit_codes $svc "$T0")' since the rotation, want 75 once"
  check_app $svc child
  ok "$svc restarted by itself $(( S1[$svc] - T0 )) ms after the rotation: $APP_OUT (the rotated EMAIL_URL included)"
done
say "socket-free restarts, ms after the rotation: $(for svc in web worker beat; do printf '%s saw it %d, stopped %d (delay %ds), started %d; ' \
  $svc $((D1[$svc] - T0)) $((F1[$svc] - T0)) ${DELAY_S[$svc]} $((S1[$svc] - T0)); done)"
for svc in web worker beat; do   # each waited its own delay between seeing the change and stopping
  waited=$(( F1[$svc] - D1[$svc] ))
  # at least its delay (less 100 ms: Docker stamps the log line when it receives it); the upper bound only
  # catches a wrapper that ignored its delay by a lot (stopping the app is slow on a loaded machine)
  [ "$waited" -ge $((DELAY_S[$svc] * 1000 - 100)) ] && [ "$waited" -le $((DELAY_S[$svc] * 1000 + 15000)) ] \
    || fail "$svc stopped $waited ms after its wrapper saw the change, want its delay ${DELAY_S[$svc]} s"
done
# staggered: in the order of their delays, start times at least half the difference of the delays apart (each
# start also varies by a poll, the stop and Docker's restart). No upper bound: a loaded machine only widens it.
for pair in web:worker worker:beat; do
  a=${pair%:*} b=${pair#*:}
  gap=$(( S1[$b] - S1[$a] )) want=$(( (DELAY_S[$b] - DELAY_S[$a]) * 1000 ))
  [ "$gap" -ge $((want / 2)) ] \
    || fail "$a → $b restarted $gap ms apart, want at least $((want / 2)) ms (delays ${DELAY_S[$a]} s, ${DELAY_S[$b]} s; poll ${POLL_S} s)"
done
# in order, and never all three down at once: the down intervals [stopped, started] have no common instant
[ "${F1[web]}" -lt "${F1[worker]}" ] && [ "${F1[worker]}" -lt "${F1[beat]}" ] \
  || fail "not stopped in the order of their delays: web ${F1[web]}, worker ${F1[worker]}, beat ${F1[beat]}"
max_f=$(printf '%s\n' "${F1[@]}" | sort -n | tail -1) min_s=$(printf '%s\n' "${S1[@]}" | sort -n | head -1)
[ "$max_f" -ge "$min_s" ] || fail "web, worker and beat were all down at once ($((max_f - T0)) .. $((min_s - T0)) ms)"
OVERLAPS=
for pair in web:worker worker:beat; do   # reported: with a stagger of seconds, two may overlap briefly
  a=${pair%:*} b=${pair#*:}
  [ "${S1[$a]}" -le "${F1[$b]}" ] || OVERLAPS+=" $a+$b $(( S1[$a] - F1[$b] )) ms"
done
STAGGER="web→worker $(( S1[worker] - S1[web] )) ms, worker→beat $(( S1[beat] - S1[worker] )) ms (delays ${DELAY_S[web]}/${DELAY_S[worker]}/${DELAY_S[beat]} s); down for web $(( S1[web] - F1[web] )), worker $(( S1[worker] - F1[worker] )), beat $(( S1[beat] - F1[beat] )) ms; two down at once:${OVERLAPS:- never}"
ok "staggered: $STAGGER; never all three down; each wrapper exited 75 once, no manual step"

# ================================================================ 8. reboot: no Compose ordering
step "reboot: containers started without Compose (bounded wait, fail closed, then start)"
T0=$(now_ms)
dc stop >/dev/null 2>&1
STOP_MS=$(( $(now_ms) - T0 ))
for svc in web worker beat; do   # the wrapper (PID 1) forwarded SIGTERM; the app stopped by itself, not SIGKILLed
  [ "$(inspect $svc '{{.State.ExitCode}}')" = 0 ] && [ "$("$DOCKER" logs --tail 1 "$(cid $svc)" 2>&1)" = "standin role=$svc stopping" ] \
    || fail "$svc did not stop gracefully: exit $(inspect $svc '{{.State.ExitCode}}'), last line: $("$DOCKER" logs --tail 1 "$(cid $svc)" 2>&1)"
done
ok "\`compose stop\`: each wrapper forwarded SIGTERM, each app stopped by itself (exit 0), $STOP_MS ms for the project"
[ -z "$(ls -A "$VOL" 2>/dev/null)" ] || fail "the tmpfs volume still holds files with every container stopped"
ok "with every holder stopped the tmpfs volume is empty (why the sidecar must keep running)"
T0=$(now_ms)
"$DOCKER" start "$(cid beat)" "$(cid web)" >/dev/null
poll $((WAIT_S + 25)) log_has beat "no /run/glitchtip-secrets/with-secrets.sh after ${WAIT_S}s" || fail "beat did not fail closed within ${WAIT_S}s + 25 s"
ok "beat alone: gave up after $(( ($(now_ms) - T0) / 1000 )) s without secrets (exit 1; its restart policy retries)"
[[ "$(pid1_cmdline web)" == "/bin/sh -c "*"wait-for-secrets ./bin/start.sh " ]] || fail "web is not waiting in the wrapper: $(pid1_cmdline web)"
"$DOCKER" start "$(cid fake-infisical)" "$(cid secrets)" "$(cid postgres)" "$(cid redis)" "$(cid worker)" >/dev/null
T1=$(now_ms)
node "$E2E/check.mjs" flat "$E2E/seed.json" >"$WORK/expected.json"   # the restarted fake serves its seed again
poll 30 app_running web || fail "web did not start once the secrets appeared"
ok "web waited, then started $(( $(now_ms) - T1 )) ms after the sidecar was started"
for svc in web worker beat; do
  poll 30 app_running $svc || fail "$svc's app is not running after the reboot"
  check_app $svc child
  ok "$svc after the reboot: $APP_OUT"
done
for svc in web worker beat; do poll 60 connected_this_run $svc || fail "$svc did not connect to postgres after the reboot"; done

# ================================================================ 9. POSTGRES_PASSWORD rotation: role sync (issue 16)
step "POSTGRES_PASSWORD rotation: the sidecar changes the role, then the files; web, worker, beat restart at once (no hand)"
out=$(healthz_wait 30 'b.status === "ok" && b.postgres?.state === "in_step"') \
  || fail "before the rotation: /healthz status $(field status "$out"), postgres $(field postgres "$out"), lastError $(field lastError.code "$out")"
for svc in web worker beat; do poll 60 connected_this_run $svc || fail "$svc has not connected to postgres before the rotation"; done
OLD_DATABASE_URL=$(cat "$VOL/keys/DATABASE_URL") OLD_PG_PASSWORD=$(cat "$VOL/keys/POSTGRES_PASSWORD")
REV_BEFORE=$(field revision "$out") SET_BEFORE=$(role_checks set) ALTERS_BEFORE=$(alter_role_lines)
for svc in web worker beat; do R0[$svc]=$(restarts $svc); done
# The probe: a client on the project's network with the secrets volume mounted as the consumers have it, which
# every 200 ms reads the current keys/DATABASE_URL and opens a new connection with it (probe-db.sh in the
# GlitchTip stand-in), from before the rotation until web, worker and beat have reconnected.
PROBE=$PROJECT-probe
"$DOCKER" run -d --name "$PROBE" --label "infisical-sidecar-e2e.probe-of=$PROJECT" --network "${PROJECT}_default" \
  --tmpfs /var/lib/postgresql/data -v "${PROJECT}_glitchtip-secrets:/run/glitchtip-secrets:ro" "$IMG_GLITCHTIP" /code/bin/probe-db.sh >/dev/null
probe_oks() { "$DOCKER" logs "$PROBE" 2>/dev/null | awk '$2 == "ok"' | wc -l; }
poll 20 eval '[ "$(probe_oks)" -ge 5 ]' || fail "the probe client does not get in with the current DATABASE_URL: $("$DOCKER" logs --tail 3 "$PROBE" 2>&1 | tr '\n' ' ')"
NEW_PG_PASSWORD="n3w p@ss 'w0rd' \"q\" \$x %41 \\ end"
node -e 'const f = process.argv[1], e = require(f); e.POSTGRES_PASSWORD = process.argv[2]; require("fs").writeFileSync(f, JSON.stringify(e))' \
  "$WORK/expected.json" "$NEW_PG_PASSWORD"
T_PUT=$(now_ms)
node -e 'process.stdout.write(JSON.stringify({ environment: "prod", path: "/glitchtip/database", key: "POSTGRES_PASSWORD", value: process.argv[1] }))' \
  "$NEW_PG_PASSWORD" | fake PUT /__fake/secrets - >/dev/null
T0=$(now_ms)
new_pg_in_files() { [ "$(cat "$VOL/keys/POSTGRES_PASSWORD")" = "$NEW_PG_PASSWORD" ]; }
poll $((3 * REFRESH_S + 5)) new_pg_in_files || fail "the new POSTGRES_PASSWORD did not reach keys/POSTGRES_PASSWORD: /healthz $(healthz_field status) $(healthz_field lastError.code)"
out=$(healthz_wait 10 "b.revision === $((REV_BEFORE + 1)) && b.status === \"ok\"") \
  || fail "/healthz after the rotation: revision $(field revision "$out"), status $(field status "$out"), lastError $(field lastError.code "$out")"
REV_AFTER=$((REV_BEFORE + 1))
[ "$(field postgres.lastResult "$out") $(field postgres.state "$out")" = "set in_step" ] \
  || fail "/healthz postgres after the rotation: $(field postgres "$out"), want lastResult set, state in_step"
[ "$(role_checks set)" = $((SET_BEFORE + 1)) ] || fail "role_checks_total{result=\"set\"} $SET_BEFORE → $(role_checks set), want +1"
# the order: the role changed (PostgreSQL's log line of the ALTER ROLE, its own timestamp; /healthz
# postgres.lastChangeAt) before the files (the sidecar's "secrets written" for the new revision); one clock, the host's
T_ALTER=$(date -d "$("$DOCKER" logs "$(cid postgres)" 2>&1 | grep -F "statement: ALTER ROLE CURRENT_USER PASSWORD 'SCRAM-SHA-256\$" | tail -1 | cut -d' ' -f1-3)" +%s%3N)
T_ROLE=$(date -d "$(field postgres.lastChangeAt "$out")" +%s%3N)
T_FILES=$(sidecar_log_ms "secrets written" "$REV_AFTER") || fail "the sidecar logged no 'secrets written' for revision $REV_AFTER"
[ "$T_ALTER" -le "$T_FILES" ] && [ "$T_ROLE" -le "$T_FILES" ] \
  || fail "the files changed before the role: ALTER ROLE logged at +$((T_ALTER - T0)) ms, role change checked at +$((T_ROLE - T0)) ms, files at +$((T_FILES - T0)) ms"
ok "the fake's new POSTGRES_PASSWORD reached the files $((T_FILES - T0)) ms after the PUT, $((T_FILES - T_ALTER)) ms after PostgreSQL logged the ALTER ROLE (role sync: lastResult set, state in_step, revision $REV_BEFORE → $REV_AFTER)"
pg_login "$OLD_DATABASE_URL" && fail "postgres still accepts the old password"
ok "the role changed in PostgreSQL with no manual step: a fresh login with the old DATABASE_URL is refused (the new one: the probe and the consumers below)"
# Each wrapper sees the new revision and, as keys/POSTGRES_PASSWORD changed (WITH_SECRETS_PROMPT_FILES), restarts
# at once: no stagger (worker and beat would otherwise wait ${DELAY_S[worker]} s and ${DELAY_S[beat]} s).
declare -A SAW STOP START CONN
for svc in web worker beat; do   # the restart count first (one inspect a poll: the probe shares this host's CPU)
  poll $((POLL_S + 20)) eval '[ "$(restarts '$svc')" -gt "${R0['$svc']}" ]' && poll 20 restarted_once $svc \
    || fail "$svc did not restart by itself (restarts ${R0[$svc]} → $(restarts $svc), $(inspect $svc '{{.State.Status}}'))"
done
for svc in web worker beat; do poll 60 connected_this_run $svc || fail "$svc did not reconnect with the new DATABASE_URL after its restart"; done
T_ALL=$(now_ms)
sleep 0.6   # a few more probe attempts after the last reconnection
"$DOCKER" logs "$PROBE" >"$WORK/probe.log" 2>&1
"$DOCKER" rm -fv "$PROBE" >/dev/null && PROBE=
for svc in web worker beat; do
  [ "$(restarts $svc)" = $((R0[$svc] + 1)) ] || fail "$svc restarted $(( $(restarts $svc) - R0[$svc] )) times, want once"
  SAW[$svc]=$(log_ms $svc "with-secrets: secrets changed (revision $REV_BEFORE -> $REV_AFTER); restarting in 0s") \
    || fail "$svc's wrapper did not restart at once (no 'restarting in 0s' for $REV_BEFORE -> $REV_AFTER): $("$DOCKER" logs "$(cid $svc)" 2>&1 | grep 'with-secrets: secrets changed' | tail -1)"
  STOP[$svc]=$(finished_ms $svc) START[$svc]=$(started_ms $svc)
  CONN[$svc]=$(log_ms $svc "standin db: glitchtip_maintainer glitchtip")
  [ "$(exit_codes $svc "$T0")" = 75 ] || fail "$svc's container exited with '$(exit_codes $svc "$T0")' since the rotation, want 75 once"
done
# web's environment byte for byte; worker and beat connected since their restart, which only the new password allows
check_app web child
ok "web, worker, beat each restarted once (exit 75) and reconnected since, which only the new DATABASE_URL allows; web: $APP_OUT (the new DATABASE_URL included)"
say "restarts after the files changed (ms): $(for svc in web worker beat; do printf '%s saw it +%d, stopped +%d, started +%d, reconnected +%d; ' \
  $svc $((SAW[$svc] - T_FILES)) $((STOP[$svc] - T_FILES)) $((START[$svc] - T_FILES)) $((CONN[$svc] - T_FILES)); done)"
# Prompt: each wrapper logged "restarting in 0s" (checked above) and stopped its app right after it saw the change
# (within 2 s; a staggered worker would wait ${DELAY_S[worker]} s, beat ${DELAY_S[beat]} s), all three stopped within less
# than one stagger step of each other, and each started again within a loose bound after the files changed (a poll
# of ${POLL_S} s, the stop and Docker's restart, which alone has taken 6 s on a loaded CI host).
PROMPT_LIMIT_MS=$(( (POLL_S + 9) * 1000 ))
for svc in web worker beat; do
  [ $((STOP[$svc] - SAW[$svc])) -le 2000 ] \
    || fail "$svc stopped $((STOP[$svc] - SAW[$svc])) ms after its wrapper saw the new password, want at once (at most 2000 ms)"
  [ $((START[$svc] - T_FILES)) -le $PROMPT_LIMIT_MS ] \
    || fail "$svc started $((START[$svc] - T_FILES)) ms after the files changed, want at most $PROMPT_LIMIT_MS ms"
done
SPREAD=$(( $(printf '%s\n' "${STOP[@]}" | sort -n | tail -1) - $(printf '%s\n' "${STOP[@]}" | sort -n | head -1) ))
[ "$SPREAD" -lt $((DELAY_S[worker] * 1000)) ] || fail "web, worker, beat stopped $SPREAD ms apart: staggered, want less than $((DELAY_S[worker] * 1000)) ms"
ok "not staggered: each stopped its app at once (saw → stopped: web $((STOP[web] - SAW[web])), worker $((STOP[worker] - SAW[worker])), beat $((STOP[beat] - SAW[beat])) ms), all three within $SPREAD ms, started again at most $PROMPT_LIMIT_MS ms after the files changed; a process still holding the old DATABASE_URL had its new connections refused from the ALTER ROLE until its restart: web $((START[web] - T_ALTER)), worker $((START[worker] - T_ALTER)), beat $((START[beat] - T_ALTER)) ms"
# The probe's record: attempts, results, the revision each read, and the refusals' window.
read -r P_N P_OK P_REFUSED P_ERROR P_NOFILE P_TIMEOUT P_NEW_OK P_WINDOW P_WHEN P_PERIOD P_GAP P_STRAY P_REASONS < <(node -e '
  const [file, tPut, tAlter, tFiles, tAll, revBefore, revAfter] = process.argv.slice(1).map(Number);
  const rows = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => {
    const [t, r, rev, d, ...why] = l.split(" ");
    return { t: Number(t), r, rev: Number(rev), d: Number(d), why: why.join(" ") };
  }).sort((a, b) => a.t - b.t);   // the attempts overlap: lines come in the order they ended
  const during = rows.filter((x) => x.t >= tPut && x.t <= tAll);
  const gaps = during.slice(1).map((x, i) => x.t - during[i].t).sort((a, b) => a - b);
  const n = (r) => rows.filter((x) => x.r === r).length;
  const refused = rows.filter((x) => x.r === "refused");
  // a refusal is explained only if the attempt read the old revision before the swap and was still connecting
  // after the ALTER ROLE (500 ms for the log lines being written after the fact)
  const stray = refused.filter((x) => !(x.rev === revBefore && x.t <= tFiles + 500 && x.t + x.d >= tAlter - 500)).length;
  const when = refused.map((x) => `${x.t - tAlter}..${x.t + x.d - tAlter}`).join(",") || "-";
  const reasons = [...new Set(rows.filter((x) => x.r === "error").map((x) => x.why))].join(",") || "-";
  console.log(rows.length, n("ok"), refused.length, n("error"), n("nofile"), n("timeout"),
    rows.filter((x) => x.r === "ok" && x.rev === revAfter).length,
    refused.length ? refused.at(-1).t - refused[0].t : 0, when,
    gaps.length ? gaps[Math.floor(gaps.length / 2)] : "-", gaps.at(-1) ?? "-", stray, reasons);
' "$WORK/probe.log" "$T_PUT" "$T_ALTER" "$T_FILES" "$T_ALL" "$REV_BEFORE" "$REV_AFTER")
say "probe: $P_N attempts from before the rotation until all three reconnected, one started every ${P_PERIOD} ms during the switch (median; largest gap $P_GAP ms): $P_OK ok ($P_NEW_OK with the new revision's DATABASE_URL), $P_REFUSED refused (from first to last ${P_WINDOW} ms; each attempt's start..end in ms after the ALTER ROLE: ${P_WHEN}), $P_ERROR other errors (${P_REASONS}), $P_NOFILE without a file, $P_TIMEOUT timed out (10 s: the host, not the switch); ALTER ROLE → files swapped: $((T_FILES - T_ALTER)) ms"
# A client that reads the files when it connects is refused only if it read the old URL before the files' swap
# and was still connecting after the ALTER ROLE (the sidecar's login check with the new password sits between the
# two): every refusal must be one of those (500 ms of slack: each time is a log line written after the fact), so
# there can be no more refusals than attempts in flight across that interval — one or two at 200 ms on an idle
# host, more when a loaded one stretches each login. Errors or a missing file would be faults of the switch.
[ "$P_NEW_OK" -ge 1 ] || fail "the probe never got in with the new revision's DATABASE_URL"
[ "$P_STRAY" = 0 ] && [ "$P_ERROR" = 0 ] && [ "$P_NOFILE" = 0 ] \
  || fail "the probe: $P_STRAY refusal(s) outside the ALTER ROLE → swap interval (attempts ${P_WHEN} ms after the ALTER ROLE; files $((T_FILES - T_ALTER)) ms), $P_ERROR errors ($P_REASONS), $P_NOFILE without a file (want 0)"
P_IN_FLIGHT=$(awk -v a="$T_ALTER" -v f="$T_FILES" '$1 <= f + 500 && $1 + $4 >= a - 500 { n++ } END { print n + 0 }' "$WORK/probe.log")
[ "$P_REFUSED" -le "$P_IN_FLIGHT" ] || fail "the probe: $P_REFUSED refused, more than the $P_IN_FLIGHT attempt(s) in flight between the ALTER ROLE and the swap"
ok "probe client reading the current files: $P_REFUSED refused attempt(s) of $P_N, all in flight across the $((T_FILES - T_ALTER)) ms between the ALTER ROLE and the files' swap ($P_IN_FLIGHT attempts were; refusals from first to last: $P_WINDOW ms); no error, never without a file"
# PostgreSQL's log (log_statement=all): the statement role sync sends, a SCRAM verifier, and no password in any form
ALTERS=$(alter_role_lines)
[ "$ALTERS" = $((ALTERS_BEFORE + 1)) ] || fail "PostgreSQL logged $((ALTERS - ALTERS_BEFORE)) ALTER ROLE CURRENT_USER PASSWORD 'SCRAM-SHA-256\$… statements for the rotation, want 1"
"$DOCKER" logs "$(cid postgres)" 2>&1 | grep -F "statement: ALTER ROLE" | grep -vE "statement: ALTER ROLE CURRENT_USER PASSWORD 'SCRAM-SHA-256\\\$[0-9]+:[A-Za-z0-9+/=]+\\\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+'\$" >/dev/null \
  && fail "PostgreSQL logged an ALTER ROLE that is not CURRENT_USER with a SCRAM-SHA-256 verifier"
pg_log_clean "$OLD_PG_PASSWORD" "$NEW_PG_PASSWORD" "$(url_password "$OLD_DATABASE_URL")" "$(url_password "$(cat "$VOL/keys/DATABASE_URL")")" \
  || fail "a database password is in PostgreSQL's log"
ok "PostgreSQL's log (log_statement=all, $("$DOCKER" logs "$(cid postgres)" 2>&1 | grep -c 'statement: ') statements): ALTER ROLE CURRENT_USER PASSWORD 'SCRAM-SHA-256\$4096:…' once, neither the old nor the new password, plain or URL-encoded"

# ================================================================ 9a. the role refuses both passwords
step "POSTGRES_PASSWORD rotated after the role's password was changed by other means: the old set stays, then published once fixed by hand"
out=$(healthz_wait 20 'b.status === "ok" && b.postgres?.state === "in_step"') || fail "before: /healthz $(field status "$out") $(field postgres "$out")"
REV_BEFORE=$(field revision "$out") FILES_BEFORE=$(files_digest) STATE_BEFORE=$(restart_state web worker beat) REFUSED_BEFORE=$(role_checks refused)
for svc in web worker beat; do R0[$svc]=$(restarts $svc); done
# someone sets the role's password by hand to a value nobody told Infisical
pg_set_role_password "$(node -e 'process.stdout.write(require("crypto").randomBytes(18).toString("hex"))')" || fail "ALTER ROLE by hand"
FIXED_PG_PASSWORD="f1xed by h@nd 'pw' \"q\" \$z %42 \\ ok"
node -e 'process.stdout.write(JSON.stringify({ environment: "prod", path: "/glitchtip/database", key: "POSTGRES_PASSWORD", value: process.argv[1] }))' \
  "$FIXED_PG_PASSWORD" | fake PUT /__fake/secrets - >/dev/null
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
node -e 'const f = process.argv[1], e = require(f); e.POSTGRES_PASSWORD = process.argv[2]; require("fs").writeFileSync(f, JSON.stringify(e))' \
  "$WORK/expected.json" "$FIXED_PG_PASSWORD"
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

# ================================================================ 9b. Docker API path
step "Docker API path: the sidecar restarts worker through the socket (SIDECAR_RESTART_SERVICES=worker)"
# compose.docker-api.yml: the socket, its group for uid 65532, short debounce/cooldown; WITH_SECRETS_RESTART=false
# for every consumer, as an operator opts out in .env, so no wrapper restarts anything: only the API acts.
DOCKER_GID=$(stat -c %g "$DOCKER_SOCK")
printf 'E2E_DOCKER_SOCK=%s\nE2E_DOCKER_GID=%s\nWITH_SECRETS_RESTART=false\n' "$DOCKER_SOCK" "$DOCKER_GID" >>"$WORK/.env"
EXTRA_FILES=(-f "$E2E/compose.docker-api.yml")
dc config -q || fail "compose config with compose.docker-api.yml"
dc logs --no-color >"$WORK/logs-before-api.log" 2>&1   # the containers about to be replaced: step 10 checks them too
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
DECOY=$PROJECT-decoy
"$DOCKER" run -d --name "$DECOY" --network none --label "infisical-sidecar-e2e.decoy-of=$PROJECT" \
  --label "com.docker.compose.project=$PROJECT-other" --label com.docker.compose.service=worker \
  "$IMG_DEBIAN" sleep infinity >/dev/null
OTHERS="web beat postgres redis fake-infisical secrets"
STATE_BEFORE="$(restart_state $OTHERS) decoy:$("$DOCKER" inspect -f '{{.RestartCount}}:{{.State.StartedAt}}' "$DECOY")"
WORKER_STARTED=$(inspect worker '{{.State.StartedAt}}')
cp "$WORK/expected.json" "$WORK/expected-before-api.json"
NEW_FROM_EMAIL="\"Rotated ✓ 'GlitchTip'\" <alerts+\$x@example.test>"
node -e 'const f = process.argv[1], e = require(f); e.DEFAULT_FROM_EMAIL = process.argv[2]; require("fs").writeFileSync(f, JSON.stringify(e))' \
  "$WORK/expected.json" "$NEW_FROM_EMAIL"
REV_BEFORE=$(healthz_field revision)
[ "$(inspect worker '{{.State.StartedAt}}')" = "$WORKER_STARTED" ] || fail "worker restarted before any rotation"
T_PUT=$(now_ms)
node -e 'process.stdout.write(JSON.stringify({ environment: "prod", path: "/glitchtip/application", key: "DEFAULT_FROM_EMAIL", value: process.argv[1] }))' \
  "$NEW_FROM_EMAIL" | fake PUT /__fake/secrets - >/dev/null
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
"$DOCKER" rm -f "$DECOY" >/dev/null && DECOY=

# ================================================================ 10. down -v
step "down -v: no secret left on disk"
{ cat "$WORK/logs-before-api.log"; dc logs --no-color; } >"$WORK/all.log" 2>&1
node "$E2E/check.mjs" flat "$E2E/seed.json" >"$WORK/seed-flat.json"
# every value this run used: the current set, the seed's, and each rotated one
ALL_VALUES=("$WORK/expected.json" "$WORK/seed-flat.json" "$NEW_EMAIL_URL" "$NEW_PG_PASSWORD" "$FIXED_PG_PASSWORD" "$NEW_FROM_EMAIL")
node -e '
  const fs = require("fs"), log = fs.readFileSync(process.argv[1], "utf8");
  const values = [2, 3].flatMap((i) => Object.values(JSON.parse(fs.readFileSync(process.argv[i], "utf8")))).concat(process.argv.slice(4));
  if (values.some((v) => log.includes(v.split("\n")[0]))) process.exit(1);
' "$WORK/all.log" "${ALL_VALUES[@]}" || fail "a secret value is in a container's log"
ok "no secret value in any container's log ($(wc -l <"$WORK/all.log") lines)"
grep -rqF "$(head -c 40 "$VOL/keys/SECRET_KEY")" /var/lib/docker/volumes || fail "positive control: the secret is not found under /var/lib/docker/volumes while mounted"
dc down -v --remove-orphans --timeout 5 >/dev/null 2>&1
[ -z "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "containers left"
[ -z "$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "volumes left"
[ -z "$("$DOCKER" network ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "networks left"
node -e '
  const values = [1, 2].flatMap((i) => Object.values(require(process.argv[i]))).concat(process.argv.slice(3));
  const { execFileSync } = require("child_process");
  const found = values.filter((v) => { try { execFileSync("grep", ["-rqF", "--", v.split("\n")[0], "/var/lib/docker/volumes", "/var/lib/docker/containers"]); return true; } catch { return false; } });
  if (found.length) { console.error("still on disk: " + found.length + " value(s)"); process.exit(1); }
' "${ALL_VALUES[@]}" \
  || fail "a secret value is still under /var/lib/docker"
ok "no container, volume or network left; no secret value under /var/lib/docker/{volumes,containers}"

# ================================================================ 10b. reboot with the last-known-good cache (issue 15)
# The seed layout with the override generated with --cache, in its own project: up, `down` (the cache volume
# kept), `up -d` with the fake Infisical gone → the consumers start from the cache; the fake comes back with a
# rotated value → they restart with it. Then the volume wiped (`down -v`): the same start stays gated.
step "reboot with --cache: down, up -d while Infisical is unreachable → the consumers start from the cache"
PROJECT=$PROJECT_PREFIX-cache EXTRA_FILES=()
cp -a "$WORK/fake" "$WORK/fake-cache"   # its own seed file, rotated below while the fake is down
sed "s|^E2E_FAKE_DIR=.*|E2E_FAKE_DIR=$WORK/fake-cache|" "$WORK/env.base" >"$WORK/.env"
node "$E2E/check.mjs" flat "$E2E/seed.json" >"$WORK/expected.json"
use_layout seed seed-cache --cache
grep -q '^      SIDECAR_CACHE_DIR: /var/cache/infisical-sidecar$' "$WORK/override-seed-cache.yml" || fail "--cache: no SIDECAR_CACHE_DIR in the override"
cache_vol() { "$DOCKER" volume inspect -f '{{.Mountpoint}}' "${PROJECT}_sidecar-cache"; }
cache_files() { find "$(cache_vol)" -type f | wc -l; }
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
T0=$(now_ms)
dc down --timeout 5 >/dev/null 2>&1
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
CACHE_EMAIL_URL="smtp://after%40reboot:c4che 'pw' \$y@smtp.example.test:2525"
node -e '
  const f = process.argv[1], s = require(f);
  s.projects[0].environments.prod.folders["/glitchtip/application"].secrets.EMAIL_URL = process.argv[2];
  require("fs").writeFileSync(f, JSON.stringify(s));' "$WORK/fake-cache/seed.json" "$CACHE_EMAIL_URL"
node -e 'const f = process.argv[1], e = require(f); e.EMAIL_URL = process.argv[2]; require("fs").writeFileSync(f, JSON.stringify(e))' \
  "$WORK/expected.json" "$CACHE_EMAIL_URL"
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

step "reboot after POSTGRES_PASSWORD was rotated while the stack was down (--cache): up on the cached set, then the role changed"
out=$(healthz_wait 20 'b.status === "ok" && b.postgres?.state === "in_step"') || fail "before: /healthz $(field status "$out") $(field postgres "$out")"
OLD_DATABASE_URL=$(cat "$VOL/keys/DATABASE_URL") OLD_PG_PASSWORD=$(cat "$VOL/keys/POSTGRES_PASSWORD")
dc down --timeout 5 >/dev/null 2>&1
[ -n "$("$DOCKER" volume ls -q --filter name="${PROJECT}_pg-data")" ] && [ -n "$("$DOCKER" volume ls -q --filter name="${PROJECT}_sidecar-cache")" ] \
  || fail "\`down\` removed PostgreSQL's data or the cache volume"
# rotated in Infisical while the stack is down (the fake's seed: it starts with it); non-ASCII, so that the
# verifier the sidecar builds (SASLprep) meets the app's libpq login
OFFLINE_PG_PASSWORD="öffline pässwörd ✓ 'x' \$y %41 @:/"
rotate_offline() {
  node -e '
    const f = process.argv[1], s = require(f);
    s.projects[0].environments.prod.folders["/glitchtip/database"].secrets.POSTGRES_PASSWORD = process.argv[2];
    require("fs").writeFileSync(f, JSON.stringify(s));' "$WORK/fake-cache/seed.json" "$1"
  node -e 'const f = process.argv[1], e = require(f); e.POSTGRES_PASSWORD = process.argv[2]; require("fs").writeFileSync(f, JSON.stringify(e))' \
    "$WORK/expected.json" "$1"
}
rotate_offline "$OFFLINE_PG_PASSWORD"
# app_current SVC: SVC's app runs with the expected values (it may still be on the cached set, about to restart)
app_current() {
  app_snapshot "$1" >/dev/null 2>&1 && node "$E2E/check.mjs" env "$WORK/expected.json" "$WORK/environ-$1" "$VOL" >/dev/null 2>&1
}
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
dc down --timeout 5 >/dev/null 2>&1
"$DOCKER" volume rm "${PROJECT}_sidecar-cache" >/dev/null || fail "could not remove ${PROJECT}_sidecar-cache"
[ -n "$("$DOCKER" volume ls -q --filter name="${PROJECT}_pg-data")" ] || fail "PostgreSQL's data volume is gone"
NOCACHE_PG_PASSWORD="n0 c4che p@ss 'w' \"q\" \$q %43"
rotate_offline "$NOCACHE_PG_PASSWORD"
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

step "reboot with the cache volume wiped (\`down -v\`): the consumers stay gated"
dc down -v --timeout 5 >/dev/null 2>&1
[ -z "$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "\`down -v\` left a volume"
ok "\`docker compose down -v\` removed ${PROJECT}_sidecar-cache"
# `up -d` waits for a healthy sidecar, which never comes (start_period 2m): stop waiting after 20 s
T0=$(now_ms)
timeout 20 $COMPOSE --project-name "$PROJECT" --project-directory "$WORK" --progress quiet --ansi never "${DC_FILES[@]}" \
  up -d --scale fake-infisical=0 >"$WORK/up.log" 2>&1 && fail "\`up -d\` succeeded without Infisical and without a cache"
[ "$(inspect secrets '{{.State.Status}}')" = running ] && ! is_health secrets healthy || fail "sidecar: $(inspect secrets '{{.State.Status}}') $(health secrets)"
for svc in web worker beat postgres; do
  [ "$(inspect $svc '{{.State.Status}}')" = created ] || fail "$svc is $(inspect $svc '{{.State.Status}}') without secrets, want created (gated)"
done
ok "after $(( $(now_ms) - T0 )) ms the sidecar is running, $(health secrets), /healthz status $(healthz_field status); web, worker, beat, postgres created, never started"
dc down -v --remove-orphans --timeout 5 >/dev/null 2>&1
[ -z "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] \
  || fail "cache project: containers or volumes left"

# ================================================================ 11. GlitchTip's sample layouts
# What differs from the seed layout: the services (no beat, a worker with beat, a one-shot migrate, one
# all_in_one), the database (user postgres) and which services a rotation restarts.
layout_scenario() {
  local name=$1 svc kind delay cmd s pg_user pg_db line first T_UP
  local -a long=() oneshot=()
  local -A want_delay=() oneshot_state=()
  PROJECT=$PROJECT_PREFIX-$name EXTRA_FILES=() LAYOUT_MODEL=$WORK/model-$name.json
  step "$name: generated override, gating, byte-exact values, migrate"
  cp "$WORK/env.base" "$WORK/.env"
  node "$E2E/check.mjs" flat "$E2E/seed.json" >"$WORK/expected.json"
  use_layout "$name"
  grep -q '^warning: service postgres, variable POSTGRES_HOST_AUTH_METHOD: trust' "$WORK/warnings-$name.txt" \
    || fail "$name: no warning about the sample's trust authentication: $(cat "$WORK/warnings-$name.txt")"
  while read -r svc kind delay cmd; do
    WANT_CMD[$svc]="/bin/sh $cmd"
    if [ "$kind" = long ]; then long+=("$svc"); want_delay[$svc]=$delay; else oneshot+=("$svc"); fi
  done < <(dc config --format json | node "$E2E/check.mjs" consumers)
  read -r pg_user pg_db < <(node -e 'const e = require(process.argv[1]).services.postgres.environment ?? {}; const u = e.POSTGRES_USER ?? "postgres"; console.log(u, e.POSTGRES_DB ?? u)' "$LAYOUT_MODEL")
  ok "override generated in the image: long-running $(for s in "${long[@]}"; do printf '%s (%s, delay %ss) ' "$s" "${WANT_CMD[$s]#/bin/sh }" "${want_delay[$s]}"; done)one-shot ${oneshot[*]:-none}; DATABASE_URL as $pg_user to $pg_db; $(wc -l <"$WORK/warnings-$name.txt") warning(s), trust among them"
  dc up -d --wait fake-infisical >/dev/null
  echo "{\"route\":\"list\",\"kind\":\"latency\",\"ms\":$FIRST_SYNC_DELAY_MS,\"times\":2}" | fake POST /__fake/faults - >/dev/null
  T_UP=$(now_ms)
  dc up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "$name: compose up"; }
  is_health secrets healthy || fail "$name: sidecar not healthy after up: $(health secrets)"
  first=$(first_healthy_ms "$T_UP")
  [ -n "$first" ] || fail "$name: no 'health_status: healthy' event of the sidecar since up"
  for svc in "${long[@]}" "${oneshot[@]}" postgres; do
    s=$(started_ms $svc)
    [ "$s" -ge "$first" ] || fail "$name: $svc started $((first - s)) ms before the sidecar was healthy"
    [ $((s - $(started_ms secrets))) -ge "$FIRST_SYNC_DELAY_MS" ] || fail "$name: $svc started too early after the sidecar"
  done
  ok "${long[*]} ${oneshot[*]:+${oneshot[*]} }postgres started after the sidecar's first healthy check"
  VOL=$(volume_dir)
  for svc in "${long[@]}"; do
    poll 30 app_running $svc || fail "$name: $svc's app is not running"
    check_app $svc child
    ok "$svc: $APP_OUT"
  done
  for svc in "${long[@]}"; do   # the web role (start.sh as web or all_in_one) connects to the database
    [ "${WANT_CMD[$svc]}" = "/bin/sh ./bin/start.sh" ] || continue
    poll 60 log_has $svc '^standin db: ' || fail "$name: $svc never reported its database connection"
    line=$("$DOCKER" logs "$(cid $svc)" 2>&1 | grep '^standin db: ' | tail -1)
    [ "$line" = "standin db: $pg_user $pg_db" ] || fail "$name: $svc's connection with DATABASE_URL: $line"
    ok "$svc connected with the derived DATABASE_URL as $pg_user to $pg_db (scram-sha-256: the sample's trust replaced)"
  done
  for svc in "${oneshot[@]}"; do
    poll 90 eval '[ "$(inspect '"$svc"' "{{.State.Status}}")" = exited ]' || fail "$name: $svc did not finish"
    [ "$(inspect $svc '{{.State.ExitCode}} {{.RestartCount}}')" = "0 0" ] \
      || fail "$name: $svc exited $(inspect $svc '{{.State.ExitCode}}'): $("$DOCKER" logs --tail 3 "$(cid $svc)" 2>&1 | tr '\n' ' ')"
    line=$("$DOCKER" logs "$(cid $svc)" 2>&1 | grep '^standin migrate: ' | tail -1)
    [ "$line" = "standin migrate: applied as $pg_user $pg_db 1" ] || fail "$name: $svc: $line"
    line=$("$DOCKER" logs "$(cid $svc)" 2>&1 | grep '^standin env sha256: ' | tail -1)
    node -e '
      const [expectedFile, volDir, line] = process.argv.slice(1), fs = require("fs"), crypto = require("crypto");
      const want = { ...JSON.parse(fs.readFileSync(expectedFile, "utf8")), DATABASE_URL: fs.readFileSync(volDir + "/keys/DATABASE_URL", "utf8") };
      const got = Object.fromEntries(line.replace(/^standin env sha256: /, "").split(" ").map((kv) => kv.split("=")));
      const bad = Object.entries(want).filter(([k, v]) => got[k] !== crypto.createHash("sha256").update(`${k}=${v}`).digest("hex")).map(([k]) => k);
      if (bad.length) { console.error("not byte-exact in the environment: " + bad.join(", ")); process.exit(1); }
      console.log(Object.keys(want).length);' "$WORK/expected.json" "$VOL" "$line" >"$WORK/migrate-env.out" 2>&1 \
      || fail "$name: $svc's environment: $(cat "$WORK/migrate-env.out")"
    ok "$svc's environment held $(cat "$WORK/migrate-env.out") secrets byte-exact (SHA-256 of each KEY=value it logged before exiting)"
    oneshot_state[$svc]=$(inspect $svc '{{.RestartCount}} {{.State.StartedAt}} {{.State.Status}}')
    ok "$svc ran once against PostgreSQL with the derived DATABASE_URL (as $pg_user to $pg_db) and exited 0"
  done

  step "$name: a rotation restarts ${long[*]}$([ ${#long[@]} -lt 2 ] || echo ' staggered'), ${oneshot[*]:-nothing else}${oneshot[*]:+ never}"
  for svc in "${long[@]}"; do R0[$svc]=$(restarts $svc); done
  node -e 'const f = process.argv[1], e = require(f); e.EMAIL_URL = process.argv[2]; require("fs").writeFileSync(f, JSON.stringify(e))' \
    "$WORK/expected.json" "$NEW_EMAIL_URL"
  node -e 'process.stdout.write(JSON.stringify({ environment: "prod", path: "/glitchtip/application", key: "EMAIL_URL", value: process.argv[1] }))' \
    "$NEW_EMAIL_URL" | fake PUT /__fake/secrets - >/dev/null
  T0=$(now_ms)
  for svc in "${long[@]}"; do
    poll $((3 * REFRESH_S + POLL_S + want_delay[$svc] + 20)) restarted_once $svc \
      || fail "$name: $svc did not restart by itself (restarts ${R0[$svc]} → $(restarts $svc), $(inspect $svc '{{.State.Status}}'))"
  done
  for svc in "${long[@]}"; do
    [ "$(restarts $svc)" = $((R0[$svc] + 1)) ] || fail "$name: $svc restarted $(( $(restarts $svc) - R0[$svc] )) times, want once"
    S1[$svc]=$(started_ms $svc)
    check_app $svc child
    ok "$svc restarted by itself $(( S1[$svc] - T0 )) ms after the rotation: $APP_OUT (the rotated EMAIL_URL included)"
  done
  for ((i = 1; i < ${#long[@]}; i++)); do   # in the order of their delays, about the difference apart
    local a=${long[i - 1]} b=${long[i]} gap want
    gap=$(( S1[$b] - S1[$a] )) want=$(( (want_delay[$b] - want_delay[$a]) * 1000 ))
    [ "$gap" -ge $((want / 2)) ] \
      || fail "$name: $a → $b restarted $gap ms apart, want at least $((want / 2)) ms (delays ${want_delay[$a]} s, ${want_delay[$b]} s)"
    ok "staggered: $a → $b $gap ms apart (delays ${want_delay[$a]} s, ${want_delay[$b]} s)"
  done
  for svc in "${oneshot[@]}"; do
    [ "$(inspect $svc '{{.RestartCount}} {{.State.StartedAt}} {{.State.Status}}')" = "${oneshot_state[$svc]}" ] \
      || fail "$name: the one-shot $svc ran again after the rotation: ${oneshot_state[$svc]} → $(inspect $svc '{{.RestartCount}} {{.State.StartedAt}} {{.State.Status}}')"
    ok "one-shot $svc not run again ($(( $(now_ms) - T0 )) ms after the rotation: restart count and start time unchanged)"
  done

  step "$name: down -v"
  dc down -v --remove-orphans --timeout 5 >/dev/null 2>&1
  [ -z "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] \
    || fail "$name: containers or volumes left"
  ok "$name: no container or volume left"
}
for layout in $SAMPLE_LAYOUTS; do layout_scenario "$layout"; done

# Issue 14: the image from a fresh clone, both ways (host node_modules offline, npm ci online with the CA as a secret).
step "image from a fresh clone, offline and online"
"$E2E/build-both.sh" || fail "build-both.sh: see its message above (a failed online step is the npm registry's; the scenarios above used the offline build)"
ok "both builds identical, no CA or npm cache in any layer"
step_end

echo "e2e: $PASSED passed, 0 failed"
exit 0
}
