#!/usr/bin/env bash
# Makes sure a PostgreSQL server is installed for the tests that start one (test/helpers/postgres.ts: initdb,
# pg_ctl and postgres, found through `pg_config --bindir` or /usr/lib/postgresql/*/bin, as here). `npm test`
# runs it before vitest, so `npm run test:all` (.ci/run) brings it onto a fresh machine.
#
# Installed: nothing when a server is there (a file check, nothing else runs). Otherwise, as root with apt-get,
# Debian's `postgresql` with --no-install-recommends. Its postinst creates a cluster (15/main) and would start
# it through invoke-rc.d: a policy-rc.d that denies every start is put in place for the install, when there is
# none (a Docker image has one already), and removed after. A cluster the install left running all the same (a
# policy-rc.d that allows starts) is stopped: none could be running before, as no server was installed.
# Not root, or no apt-get: it says what to install and exits 0, and the tests that need the server fail
# naming the package (they are never skipped).
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

have_server() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && return 0
  done
  return 1
}

have_server && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ensure-postgres: no PostgreSQL server (initdb, pg_ctl, postgres) found; the tests that start one will fail." \
    "Install the Debian package postgresql: apt-get install --no-install-recommends postgresql" >&2
  exit 0
fi

POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=
cleanup() { [ -z "$OWN_POLICY" ] || rm -f "$POLICY"; }
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# scripts/ensure-postgres.sh (infisical-sidecar): no service starts while it installs postgresql\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  OWN_POLICY=1
fi

echo "ensure-postgres: apt-get install postgresql" >&2
DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null

if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters --no-header 2>/dev/null | while read -r version name _port status _rest; do
    case $status in
      online*)
        echo "ensure-postgres: stopping cluster $version/$name, which the install started" >&2
        pg_ctlcluster --mode fast "$version" "$name" stop || true
        ;;
    esac
  done
fi

have_server || { echo "ensure-postgres: postgresql installed, but no initdb/pg_ctl/postgres found" >&2; exit 1; }
