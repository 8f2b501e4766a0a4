#!/bin/sh
# Test only (scenarios/07-role-sync-rotation.sh): a database client that, every PROBE_PERIOD_MS (200), reads the
# current keys/DATABASE_URL from the secrets volume and opens a new connection with it (`select 1`), as a
# GlitchTip process starting at that instant would. Each attempt runs in the background, so a slow login on a
# busy host overlaps the next one rather than stretching the period. One line per attempt, no value ever printed:
#   EPOCH_MS RESULT REVISION DURATION_MS [REASON]
# EPOCH_MS: when the file was read; RESULT: ok; refused (the server said the password is wrong); timeout (no
# answer within 10 s: a host too busy); error (anything else, REASON: psql's first words); nofile. REVISION: the version `..data` pointed to just before the file was read.
. /code/bin/pgurl.sh
dir=${SECRETS_DIR:-/run/glitchtip-secrets}
period=$(awk "BEGIN { print ${PROBE_PERIOD_MS:-200} / 1000 }")
# attempt T0 REV: one connection with the URL parsed last
attempt() {
  reason=
  if out=$(PGPASSWORD=$PGPASSWORD PGCONNECT_TIMEOUT=10 psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$PGDATABASE" -w -tAc 'select 1' 2>&1); then
    r=ok
  else
    case "$out" in
      *"password authentication failed"*) r=refused ;;
      *"timeout expired"*) r=timeout ;;
      *) r=error reason=$(printf '%s' "$out" | head -1 | sed 's/.*failed: //' | tr -c 'A-Za-z0-9.\n' _ | cut -c1-60) ;;
    esac
  fi
  echo "$1 $r $2 $(( $(date +%s%3N) - $1 )) $reason"
}
trap 'exit 0' TERM INT
last=
while :; do
  sleep "$period" &
  tick=$!
  t0=$(date +%s%3N)
  rev=$(readlink "$dir/..data" 2>/dev/null) rev=${rev#..rev-} rev=${rev%%-*}
  # `read`, a builtin (fewer processes a round); the file has no trailing newline
  url= && { IFS= read -r url <"$dir/keys/DATABASE_URL" || [ -n "$url" ]; } 2>/dev/null
  if [ -n "$url" ]; then
    [ "$url" = "$last" ] || { pg_env "$url"; last=$url; }   # parsed again only when it changed
    attempt "$t0" "${rev:--}" &
  else
    echo "$t0 nofile ${rev:--} 0"
  fi
  wait "$tick"
done
