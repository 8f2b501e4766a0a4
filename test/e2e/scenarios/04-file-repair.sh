#!/usr/bin/env bash
# Files deleted on the volume behind the sidecar's back (secrets.env and the ..data link) are restored — by
# the watcher or the next refresh — as a new version with the same revision and the same bytes, so no wrapper
# sees a change and no consumer restarts.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
use_layout seed
up_project
settle

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
finish
