#!/bin/bash
# docker-entrypoint.sh of the local/postgres stand-in: the subset of the official postgres image's entrypoint
# that a Compose file relies on, with the same semantics:
#   - POSTGRES_PASSWORD / POSTGRES_USER / POSTGRES_DB, each also as *_FILE (read with `$(< file)`, so trailing
#     newlines are stripped; read as root before dropping privileges; setting both forms is an error);
#   - initdb only when PGDATA is empty, then `host all all all ${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}`;
#   - POSTGRES_DB created when it differs from `postgres`; the server runs as the postgres user.
set -Eeo pipefail

file_env() {
  local var=$1 fileVar="${1}_FILE" def=${2:-} val
  if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
    echo >&2 "error: both $var and $fileVar are set (but are exclusive)"; exit 1
  fi
  val=$def
  if [ "${!var:-}" ]; then val=${!var}; elif [ "${!fileVar:-}" ]; then val="$(<"${!fileVar}")"; fi
  export "$var"="$val"
  unset "$fileVar"
}

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
    echo >&2 "error: database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD[_FILE])"; exit 1
  fi
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") -D "$PGDATA" \
    --auth-local=trust --auth-host="$auth" >/dev/null
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -q \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "PostgreSQL init process complete; ready for start up."
fi
unset POSTGRES_PASSWORD
exec "$@"
