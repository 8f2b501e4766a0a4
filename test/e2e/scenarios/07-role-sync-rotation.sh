#!/usr/bin/env bash
# A POSTGRES_PASSWORD rotated in Infisical (a hostile value) changes the role in PostgreSQL before the files,
# with no manual step: the ALTER ROLE is logged before "secrets written", the old DATABASE_URL is refused;
# web, worker and beat restart once each, at once (no stagger), and reconnect. A client opening a connection
# with the current files every 200 ms is refused only while in flight across the ALTER ROLE → swap interval.
# PostgreSQL's log (log_statement=all) holds the SCRAM verifier statement once and no password in any form.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed
up_project
settle

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
PROBE=$(run_extra probe --network "${PROJECT}_default" --tmpfs /var/lib/postgresql/data \
  -v "${PROJECT}_glitchtip-secrets:/run/glitchtip-secrets:ro" "$IMG_GLITCHTIP" /code/bin/probe-db.sh) || fail "the probe client did not start"
probe_oks() { "$DOCKER" logs "$PROBE" 2>/dev/null | awk '$2 == "ok"' | wc -l; }
poll 20 eval '[ "$(probe_oks)" -ge 5 ]' || fail "the probe client does not get in with the current DATABASE_URL: $("$DOCKER" logs --tail 3 "$PROBE" 2>&1 | tr '\n' ' ')"
NEW_PG_PASSWORD="n3w p@ss 'w0rd' \"q\" \$x %41 \\ end"
T_PUT=$(now_ms)
rotate /glitchtip/database POSTGRES_PASSWORD "$NEW_PG_PASSWORD"
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

finish
