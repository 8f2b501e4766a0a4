# Sourced by the role scripts (which set $role): behaves like a GlitchTip process as far as the e2e test can tell.
# It logs how it was started; web and all_in_one make GlitchTip's first database connection with DATABASE_URL
# (retrying while postgres starts) and then stay up until SIGTERM; migrate applies a "migration" with
# DATABASE_URL and exits 0, as ./bin/run-migrate.sh does, logging a hash of each secret in its environment. The long-running ones' environment — what the test
# checks byte for byte — is in /proc/<pid>/environ.
echo "standin role=$role pid=$$ uid=$(id -u) gid=$(id -g) groups=$(id -G)"
# urldecode: stdin with %XX decoded, as GlitchTip (django-environ) decodes DATABASE_URL's user and password
urldecode() {
  awk 'BEGIN { hex = "0123456789ABCDEF" } {
    out = ""; s = $0
    while (match(s, /%[0-9A-Fa-f][0-9A-Fa-f]/)) {
      out = out substr(s, 1, RSTART - 1) sprintf("%c", (index(hex, toupper(substr(s, RSTART + 1, 1))) - 1) * 16 + index(hex, toupper(substr(s, RSTART + 2, 1))) - 1)
      s = substr(s, RSTART + 3)
    }
    printf "%s", out s
  }'
}
db() { # db SQL: runs SQL with DATABASE_URL, retrying for up to 60 s while postgres starts
  # The URL's parts, the password in psql's environment: a URL in psql's argv would show the password to
  # anyone on the host (and the test fails on any secret in any process's argv), which GlitchTip never does.
  rest=${DATABASE_URL#*://}
  userinfo=${rest%%@*} hostpart=${rest#*@}
  pg_user=$(printf '%s' "${userinfo%%:*}" | urldecode) pg_password=$(printf '%s' "${userinfo#*:}" | urldecode)
  hostport=${hostpart%%/*} pg_db=$(printf '%s' "${hostpart#*/}" | urldecode)
  i=0
  until out=$(PGPASSWORD=$pg_password psql -h "${hostport%%:*}" -p "${hostport##*:}" -U "$pg_user" -d "$pg_db" -w -qtA -v ON_ERROR_STOP=1 -c "$1" 2>&1); do
    i=$((i + 1))
    if [ $i -ge 120 ]; then return 1; fi
    sleep 0.5
  done
}
case "$role" in
  web | all_in_one)
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
trap 'echo "standin role=$role stopping"; exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $!
done
