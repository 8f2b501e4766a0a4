#!/bin/sh
# Test only (run.sh, POSTGRES_PASSWORD rotation): a database client that, every PROBE_PERIOD_MS (200), reads the
# current keys/DATABASE_URL from the secrets volume and opens a new connection with it (`select 1`), as a
# GlitchTip process started at that instant would. One line per attempt, no value ever printed:
#   EPOCH_MS RESULT REVISION DURATION_MS [REASON]
# RESULT: ok; refused (the server said the password is wrong); error (anything else, REASON: psql's first words);
# nofile. REVISION: the version `..data` pointed to just before the file was read.
. /code/bin/pgurl.sh
dir=${SECRETS_DIR:-/run/glitchtip-secrets}
period=$(awk "BEGIN { print ${PROBE_PERIOD_MS:-200} / 1000 }")
trap 'exit 0' TERM INT
while :; do
  sleep "$period" &
  t0=$(date +%s%3N)
  rev=$(readlink "$dir/..data" 2>/dev/null) rev=${rev#..rev-} rev=${rev%%-*}
  reason=
  if url=$(cat "$dir/keys/DATABASE_URL" 2>/dev/null) && [ -n "$url" ]; then
    pg_env "$url"
    if out=$(PGPASSWORD=$PGPASSWORD PGCONNECT_TIMEOUT=2 psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$PGDATABASE" -w -tAc 'select 1' 2>&1); then
      r=ok
    else
      case "$out" in
        *"password authentication failed"*) r=refused ;;
        *) r=error reason=$(printf '%s' "$out" | head -1 | sed 's/.*failed: //' | tr -c 'A-Za-z0-9.\n' _ | cut -c1-60) ;;
      esac
    fi
  else
    r=nofile
  fi
  echo "$t0 $r ${rev:--} $(( $(date +%s%3N) - t0 )) $reason"
  wait $!
done
