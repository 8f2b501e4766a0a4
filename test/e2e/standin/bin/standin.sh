# Sourced by the role scripts (which set $role): behaves like a GlitchTip process as far as the e2e test can tell.
# It logs how it was started; the long-running roles (web, all_in_one, worker, beat) make GlitchTip's first
# database connection with DATABASE_URL (retrying for up to 60 s while postgres starts or refuses the password),
# log "standin db: USER DATABASE" and then stay up until SIGTERM; migrate applies a "migration" with
# DATABASE_URL and exits 0, as ./bin/run-migrate.sh does, logging a hash of each secret in its environment. The
# long-running ones' environment — what the test checks byte for byte — is in /proc/<pid>/environ.
echo "standin role=$role pid=$$ uid=$(id -u) gid=$(id -g) groups=$(id -G)"
. /code/bin/pgurl.sh
db() { # db SQL: runs SQL with DATABASE_URL, retrying for up to 60 s while postgres starts (or refuses the password)
  pg_env "$DATABASE_URL"
  i=0
  until out=$(PGPASSWORD=$PGPASSWORD psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$PGDATABASE" -w -qtA -v ON_ERROR_STOP=1 -c "$1" 2>&1); do
    i=$((i + 1))
    if [ $i -ge 120 ]; then return 1; fi
    sleep 0.5
  done
}
# the long-running roles stop on SIGTERM even while they are still connecting
[ "$role" = migrate ] || trap 'echo "standin role=$role stopping"; exit 0' TERM INT
case "$role" in
  web | all_in_one | worker | beat)
    # GlitchTip's first database connection (celery's workers and beat's scheduler use the database too)
    db "select current_user || ' ' || current_database()"
    echo "standin db: $out" ;;
  migrate)
    # A one-shot process is gone before the test can read its environ: it logs, per key the sidecar wrote, the
    # SHA-256 of its own environ entry "KEY=value" (exact bytes; a hash, never a value), for the test to compare.
    hashes=
    for k in $(ls /run/glitchtip-secrets/keys); do
      hashes="$hashes $k=$(grep -z "^$k=" /proc/$$/environ | head -c -1 | sha256sum | cut -c1-64)"
    done
    echo "standin env sha256:$hashes"
    if db "create table if not exists standin_migrations (applied_at timestamptz default now()); insert into standin_migrations default values; select current_user || ' ' || current_database() || ' ' || count(*) from standin_migrations"; then
      echo "standin migrate: applied as $(printf '%s\n' "$out" | tail -1)"
      exit 0
    fi
    echo "standin migrate: failed: $out" >&2
    exit 1 ;;
esac
while :; do
  sleep 3600 &
  wait $!
done
