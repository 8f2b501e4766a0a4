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

trixie_extract docker-compose "$CACHE/compose"
"$BIN" version >&2 || die "the downloaded docker-compose does not run"
echo "$BIN"
