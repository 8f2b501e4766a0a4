#!/usr/bin/env bash
# Prints a command that runs Docker Compose v2 (what users run as `docker compose`), fetching it when needed.
#
# Order: $COMPOSE if set; the `docker compose` plugin if it reports v2; a copy cached by an earlier run;
# otherwise Debian trixie's docker-compose package (v2, needs only libc6 >= 2.34), downloaded with a
# private apt state whose sources are derived from this machine's own Debian sources (same URIs, suite
# trixie) and unpacked with dpkg-deb into the cache. The system's apt configuration is not touched.
#
# Usage: COMPOSE=$(scripts/docker/compose-v2.sh) && $COMPOSE version
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ -n "${COMPOSE:-}" ]; then echo "$COMPOSE"; exit 0; fi
if "$DOCKER" compose version --short 2>/dev/null | grep -q '^v\?2\.'; then echo "$DOCKER compose"; exit 0; fi

CACHE=${INFISICAL_SIDECAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infisical-sidecar}
BIN=$CACHE/compose/usr/libexec/docker/cli-plugins/docker-compose
if [ -x "$BIN" ] && "$BIN" version --short >/dev/null 2>&1; then echo "$BIN"; exit 0; fi

uri=$(debian_uri bookworm)
[ -n "$uri" ] || die "no Debian main archive URI found in $DEBIAN_SOURCES"
APT=$CACHE/apt-trixie
rm -rf "$APT" "$CACHE/compose"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/etc" "$CACHE/compose"
cat >"$APT/etc/trixie.sources" <<SRC
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: $(debian_keyring)
SRC
apt_private() {
  apt-get -q -o Dir::Etc::SourceList="$APT/etc/trixie.sources" -o Dir::Etc::SourceParts=/nonexistent \
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" -o Dir::State::status=/var/lib/dpkg/status \
    -o APT::Architecture="$(dpkg --print-architecture)" "$@"
}
say "fetching Compose v2 from Debian trixie (private apt state in $APT)"
timed "apt-get update (trixie, private)" apt_private update >"$APT/update.log" 2>&1 || { tail "$APT/update.log" >&2; die "apt-get update (trixie)"; }
(cd "$APT" && timed "apt-get download docker-compose" apt_private download docker-compose >"$APT/download.log" 2>&1) \
  || { tail "$APT/download.log" >&2; die "apt-get download docker-compose"; }
dpkg-deb -x "$APT"/docker-compose_*.deb "$CACHE/compose"
rm -rf "$APT"   # the trixie lists are ~100 MB; only the binary is kept
"$BIN" version >&2 || die "the downloaded docker-compose does not run"
echo "$BIN"
