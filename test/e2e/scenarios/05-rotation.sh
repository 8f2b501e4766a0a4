#!/usr/bin/env bash
# A rotated EMAIL_URL reaches the files within one refresh interval (/healthz revision +1), then web, worker and
# beat by themselves, with no socket and no manual step: each wrapper waits its own delay, stops its app and
# exits 75, and the restart policy brings the service back with the new value — each once, in the order of their
# delays, staggered, never all three down at once.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed
up_project
settle

step "rotation: a new EMAIL_URL in the fake reaches the files within one interval, then each app by itself, staggered"
declare -A F1 S1 D1
for svc in web worker beat; do R0[$svc]=$(restarts $svc); done
NEW_EMAIL_URL="smtp://rotated%40app:n3w 'pw' \$x \"q\"@smtp.example.test:2525"
REV_BEFORE=$(healthz_field revision)
T_PUT=$(now_ms)   # a sync may finish with the new value before `docker exec` of the PUT has returned
rotate /glitchtip/application EMAIL_URL "$NEW_EMAIL_URL"
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
finish
