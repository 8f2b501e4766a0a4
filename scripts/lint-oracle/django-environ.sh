#!/usr/bin/env bash
# Prints a directory to put on PYTHONPATH so that `import environ` loads the django-environ GlitchTip
# pins (0.12: Debian trixie's python3-django-environ; bookworm's is far older), fetching it when needed.
#
# Same way as scripts/docker/compose-v2.sh fetches Compose v2: a private apt state whose sources are this
# machine's Debian mirror with suite trixie, `apt-get download`, `dpkg-deb -x` into a cache; nothing is
# installed and the system's apt configuration is not touched. django-environ imports Django only when it
# is installed (environ/compat.py falls back to its own ImproperlyConfigured), and the URL parsing under
# test does not depend on it, so python3-django is not fetched.
#
# Usage: PYTHONPATH=$(scripts/lint-oracle/django-environ.sh) python3 -c 'import environ'
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../docker/lib.sh"

CACHE=${INFISICAL_SIDECAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infisical-sidecar}
ROOT=$CACHE/django-environ
SITE=$ROOT/usr/lib/python3/dist-packages
version_ok() { PYTHONPATH=$SITE python3 -c 'import environ, sys; sys.exit(0 if environ.__version__.startswith("0.12") else 1)' 2>/dev/null; }
if version_ok; then echo "$SITE"; exit 0; fi

command -v python3 >/dev/null || die "no python3 on this machine (the oracle runs django-environ with it)"
trixie_extract python3-django-environ "$ROOT"
version_ok || die "the downloaded django-environ does not import as 0.12 with $(python3 --version)"
echo "$SITE"
