#!/usr/bin/env bash
# A host reboot, where the engine starts containers in any order and ignores depends_on: `compose stop` stops
# each app gracefully and leaves the tmpfs volume empty; a consumer started without the sidecar waits a bounded
# time and fails closed (its restart policy retries), one still waiting starts once the sidecar has written the
# files, and all come back byte-exact and connected to postgres.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed
up_project
settle

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
poll 30 app_running web || fail "web did not start once the secrets appeared"
ok "web waited, then started $(( $(now_ms) - T1 )) ms after the sidecar was started"
for svc in web worker beat; do
  poll 30 app_running $svc || fail "$svc's app is not running after the reboot"
  check_app $svc child
  ok "$svc after the reboot: $APP_OUT"
done
for svc in web worker beat; do poll 60 connected_this_run $svc || fail "$svc did not connect to postgres after the reboot"; done
ok "web, worker, beat connected to postgres after the reboot"
finish
