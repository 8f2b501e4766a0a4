# shellcheck shell=bash
# Shared library of the Docker e2e scenarios (test/e2e/scenarios/*.sh). Each scenario is its own bash process,
# started by test/e2e/run.sh, which has already started dockerd, built the images and the fake Infisical bundle
# and exported where they are (E2E_SHARED: the bundle and the client credentials; COMPOSE; IMG_SIDECAR;
# IMG_GLITCHTIP). A scenario sources this file, calls scenario_start (its own Compose project and work directory,
# leftovers removed, a trap that removes everything on any exit), brings its project up, asserts, and ends with
# finish (or pass, without a project).
set -euo pipefail
E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E/../.." && pwd)
unset _T0   # each scenario's clock starts at its own start
source "$REPO_ROOT/scripts/docker/lib.sh"

PROJECT_PREFIX=${E2E_PROJECT:-infisical-sidecar-e2e}
FIXTURES=$REPO_ROOT/test/fixtures/compose
IMG_GLITCHTIP=${IMG_GLITCHTIP:-local/glitchtip-standin:e2e}
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
declare -A R0=()     # restart counts before a rotation, per service
DC_FILES=()          # -f base -f override -f stand-ins of the scenario's layout
EXTRA_FILES=()       # more -f files (compose.docker-api.yml)
LAYOUT_MODEL=        # a sample layout's base model (check.mjs env reads its settings and database from it)
USED_VALUES=()       # every secret value the scenario put into the fake: finish looks for each in logs and on disk
DECOY=               # extra containers the scenario started outside Compose, removed on exit
PROBE=
PASSED=0
SCENARIO=
PROJECT=
WORK=
VOL=
FINISHED=0
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
  exit 1
}
# poll SECONDS CMD...: runs CMD every 0.2 s until it succeeds (0) or SECONDS pass (1)
poll() {
  local deadline=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@"; do [ "$(now_ms)" -lt "$deadline" ] || return 1; sleep 0.2; done
}

# ---------------------------------------------------------------- scenario lifecycle
# scenario_start: the scenario's Compose project (named after its file) and work directory; removes whatever
# an earlier, killed run of the same scenario left, so that it starts from nothing.
scenario_start() {
  [ -n "${E2E_SHARED:-}" ] && [ -d "$E2E_SHARED" ] && [ -n "${COMPOSE:-}" ] \
    || die "run scenarios through the runner: bash test/e2e/run.sh $(basename "$0" .sh)"
  SCENARIO=$(basename "$0" .sh)
  PROJECT=$PROJECT_PREFIX-$SCENARIO
  WORK=$E2E_SHARED/work-$SCENARIO
  rm -rf "$WORK"
  install -d -m 0755 "$WORK"
  trap scenario_exit EXIT
  trap 'exit 130' INT TERM
  remove_project
  # the project's own copy of what the runner prepared: the fake's seed may be changed by the scenario
  cp -a "$E2E_SHARED/fake" "$WORK/fake"
  cp -a "$E2E_SHARED/secrets" "$WORK/secrets"
  # the project's .env: what an operator writes (non-secret settings), plus the stand-in images
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
  node "$E2E/check.mjs" flat "$E2E/seed.json" >"$WORK/expected.json"
  say "scenario $SCENARIO: project $PROJECT, work $WORK"
}
# remove_project: every container, volume and network of the project, and the extra containers of its scenario
remove_project() {
  "$DOCKER" ps -aq --filter "label=infisical-sidecar-e2e.extra-of=$PROJECT" | xargs -r "$DOCKER" rm -fv >/dev/null
  if [ -n "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ]; then
    say "removing leftovers of project $PROJECT"
    "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT" | xargs -r "$DOCKER" rm -f >/dev/null
    "$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r "$DOCKER" volume rm >/dev/null
  fi
  "$DOCKER" network ls -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r "$DOCKER" network rm >/dev/null
}
# on any exit: a failed scenario shows its logs, then everything of the project goes (unless E2E_KEEP_UP=1)
scenario_exit() {
  local rc=$?
  trap - EXIT INT TERM
  step_end
  if [ $rc != 0 ] && [ ${#DC_FILES[@]} -gt 0 ]; then
    say "logs of the failed scenario (last 30 lines per service):"
    dc logs --no-color --tail 30 >&2 2>&1 || true
    dc ps -a >&2 2>&1 || true
  fi
  if [ $rc != 0 ] && [ "${E2E_KEEP_UP:-0}" = 1 ]; then
    say "E2E_KEEP_UP=1: project $PROJECT left running; remove it with: (cd $WORK && $COMPOSE -p $PROJECT down -v)"
    printf '%s: FAIL after %d checks\n' "$SCENARIO" "$PASSED"
    exit $rc
  fi
  [ "$FINISHED" = 1 ] || {
    [ ${#DC_FILES[@]} = 0 ] || dc_down -v || say "compose down failed: $(tail -3 "$WORK/down.log")"
    remove_project || say "could not remove everything of project $PROJECT"
  }
  if [ $rc = 0 ]; then printf '%s: %d checks passed\n' "$SCENARIO" "$PASSED"
  else printf '%s: FAIL after %d checks\n' "$SCENARIO" "$PASSED"; fi
  exit $rc
}
# run_extra NAME DOCKER-RUN-ARGS...: a container outside Compose, labelled so that the scenario's exit removes it
run_extra() {
  local name=$PROJECT-$1; shift
  "$DOCKER" run -d --name "$name" --label "infisical-sidecar-e2e.extra-of=$PROJECT" "$@" >/dev/null && echo "$name"
}
# pass: the end of a scenario without a Compose project
pass() { step_end; FINISHED=1; exit 0; }
# finish: the end of a scenario with a project: no value it used in any container's log, then `down -v` leaves
# no container, volume or network and no value anywhere under /var/lib/docker
finish() {
  step "down -v: no secret left in the logs or on disk"
  local values
  node "$E2E/check.mjs" flat "$E2E/seed.json" >"$WORK/seed-flat.json"
  values=("$WORK/expected.json" "$WORK/seed-flat.json" "${USED_VALUES[@]}")
  { cat "$WORK"/logs-before-*.log 2>/dev/null || true; dc logs --no-color; } >"$WORK/all.log" 2>&1
  node -e '
    const fs = require("fs"), log = fs.readFileSync(process.argv[1], "utf8");
    const values = [2, 3].flatMap((i) => Object.values(JSON.parse(fs.readFileSync(process.argv[i], "utf8")))).concat(process.argv.slice(4));
    if (values.some((v) => log.includes(v.split("\n")[0]))) process.exit(1);
  ' "$WORK/all.log" "${values[@]}" || fail "a secret value is in a container's log"
  ok "no secret value in any container's log ($(wc -l <"$WORK/all.log") lines, ${#USED_VALUES[@]} rotated value(s) besides the seed's)"
  if [ -n "$VOL" ] && [ -s "$VOL/keys/SECRET_KEY" ]; then   # the search below finds a mounted value
    grep -rqF "$(head -c 40 "$VOL/keys/SECRET_KEY")" "$(dirname "$VOL")" \
      || fail "positive control: the secret is not found under $(dirname "$VOL") while mounted"
  fi
  dc_down -v || fail "compose down -v: $(tail -3 "$WORK/down.log")"
  [ -z "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "containers left"
  [ -z "$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "volumes left"
  [ -z "$("$DOCKER" network ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "networks left"
  # everything under volumes/ and containers/ but what dockerd still knows (another scenario's, when they run
  # side by side, with the same seed values): what this project left behind is searched
  local -a exclude=()
  mapfile -t exclude < <({ "$DOCKER" ps -aq --no-trunc; "$DOCKER" volume ls -q; } | sed 's/^/--exclude-dir=/')
  node -e '
    const n = Number(process.argv[1]), exclude = process.argv.slice(2, 2 + n), rest = process.argv.slice(2 + n);
    const values = [0, 1].flatMap((i) => Object.values(require(rest[i]))).concat(rest.slice(2));
    const { execFileSync } = require("child_process");
    const found = values.filter((v) => { try { execFileSync("grep", ["-rqF", ...exclude, "--", v.split("\n")[0], "/var/lib/docker/volumes", "/var/lib/docker/containers"]); return true; } catch { return false; } });
    if (found.length) { console.error("still on disk: " + found.length + " value(s)"); process.exit(1); }
  ' "${#exclude[@]}" "${exclude[@]}" "${values[@]}" || fail "a secret value is still under /var/lib/docker"
  ok "no container, volume or network left; no secret value under /var/lib/docker/{volumes,containers}$([ ${#exclude[@]} = 0 ] || echo " (${#exclude[@]} containers and volumes still in use skipped)")"
  FINISHED=1
  step_end
  exit 0
}

# ---------------------------------------------------------------- compose and container helpers
dc() {
  $COMPOSE --project-name "$PROJECT" --project-directory "$WORK" --progress quiet --ansi never \
    "${DC_FILES[@]}" "${EXTRA_FILES[@]}" "$@"
}
# dc_down [-v]: `compose down`, retried for up to 30 s while dockerd still reports a removed container's endpoint
# on the network ("has active endpoints": its cleanup lags on a loaded host); the last error in $WORK/down.log
dc_down() {
  local deadline=$(( $(now_ms) + 30000 ))
  until dc down --remove-orphans --timeout 5 "$@" >"$WORK/down.log" 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    say "compose down: $(tail -1 "$WORK/down.log"); retrying"
    sleep 1
  done
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
# fake_latency: the next sync's two folder requests each wait FIRST_SYNC_DELAY_MS, so that gating is observable
fake_latency() { echo "{\"route\":\"list\",\"kind\":\"latency\",\"ms\":$FIRST_SYNC_DELAY_MS,\"times\":2}" | fake POST /__fake/faults - >/dev/null; }
# set_expected KEY VALUE: what the consumers must see from now on (and a value finish looks for)
set_expected() {
  node -e 'const f = process.argv[1], e = require(f); e[process.argv[2]] = process.argv[3]; require("fs").writeFileSync(f, JSON.stringify(e))' \
    "$WORK/expected.json" "$1" "$2"
  USED_VALUES+=("$2")
}
# fake_put FOLDER KEY VALUE: a new value in the running fake Infisical
fake_put() {
  USED_VALUES+=("$3")
  node -e 'process.stdout.write(JSON.stringify({ environment: "prod", path: process.argv[1], key: process.argv[2], value: process.argv[3] }))' \
    "$1" "$2" "$3" | fake PUT /__fake/secrets - >/dev/null
}
# rotate FOLDER KEY VALUE: a new value in the fake, and in what the consumers must see from now on
rotate() { set_expected "$2" "$3"; fake_put "$@"; }
# rotate_in_seed FOLDER KEY VALUE: a new value in the fake's seed file (what it serves after its next start)
rotate_in_seed() {
  set_expected "$2" "$3"
  node -e '
    const [f, folder, key, value] = process.argv.slice(1), s = require(f);
    s.projects[0].environments.prod.folders[folder].secrets[key] = value;
    require("fs").writeFileSync(f, JSON.stringify(s));' "$WORK/fake/seed.json" "$1" "$2" "$3"
}
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
# app_current SVC: SVC's app runs with the expected values (not one still on an older set, about to restart)
app_current() {
  app_snapshot "$1" >/dev/null 2>&1 && node "$E2E/check.mjs" env "$WORK/expected.json" "$WORK/environ-$1" "$VOL" >/dev/null 2>&1
}
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
# restarted_once SVC: SVC restarted once since R0 was taken, and its app is up again
restarted_once() { [ "$(restarts "$1")" = $((R0[$1] + 1)) ] && app_running "$1"; }
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
cache_vol() { "$DOCKER" volume inspect -f '{{.Mountpoint}}' "${PROJECT}_sidecar-cache"; }   # --cache's volume
cache_files() { find "$(cache_vol)" -type f | wc -l; }
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

# ---------------------------------------------------------------- layouts and bringing a project up
# use_layout NAME: generates NAME's override with the image from `docker compose config --format json` of its
# base file, as an operator does (docs/production.md), and its stand-ins overlay; points dc at base + override
# + stand-ins. --no-subpath: this machine's Docker Engine 20.10 has no volume subpath. The warnings are in
# $WORK/warnings-NAME.txt. use_layout NAME KEY FLAGS...: more generator flags (e.g. --cache), files named KEY.
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
# up_project: the fake Infisical first (healthy), then `up -d`, which returns once the consumers were started
# (they depend on the sidecar's health)
up_project() {
  timed "compose up fake-infisical (healthy)" dc up -d --wait fake-infisical >/dev/null || fail "compose up of the fake Infisical"
  timed "compose up (consumers started)" dc up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up"; }
  VOL=$(volume_dir)
}
# settle: the steady state the rotation scenarios start from — /healthz ok, PostgreSQL in step with the files
# (its first start runs initdb), web, worker and beat connected to it
settle() {
  local out svc t0=$(now_ms)
  out=$(healthz_wait 120 'b.status === "ok" && b.postgres?.state === "in_step"') \
    || fail "not settled: /healthz status $(field status "$out"), postgres $(field postgres "$out"), lastError $(field lastError.code "$out")"
  for svc in web worker beat; do poll 60 connected_this_run $svc || fail "$svc never connected to postgres"; done
  say "settled: /healthz ok, postgres in step, web, worker, beat connected ($(( $(now_ms) - t0 )) ms)"
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

# ---------------------------------------------------------------- GlitchTip's sample layouts
# sample_layout NAME: what a sample layout changes against the seed one (the services: no beat, a worker with
# beat embedded, a one-shot migrate, one all_in_one; the database user; which services a rotation restarts):
# gating, byte-exact values, migrate against PostgreSQL, and a rotation that restarts the long-running
# services, staggered, and never the one-shot ones.
sample_layout() {
  local name=$1 svc kind delay cmd s pg_user pg_db line first T_UP T0 i
  local -a long=() oneshot=()
  local -A want_delay=() oneshot_state=() S1=()
  LAYOUT_MODEL=$WORK/model-$name.json
  step "$name: generated override, gating, byte-exact values, migrate"
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
  fake_latency
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
  rotate /glitchtip/application EMAIL_URL "smtp://rotated%40app:n3w 'pw' \$x \"q\"@smtp.example.test:2525"
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
}
