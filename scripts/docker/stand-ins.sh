#!/usr/bin/env bash
# Builds the local stand-ins for the official base images, which cannot be pulled here. Each one is skipped
# when it exists already (FORCE=1 rebuilds them all). Needs root, dockerd running, debootstrap.
#
#   local/debian:bookworm        debootstrap --variant=minbase bookworm, apt caches and lists dropped
#   local/node:N-bookworm-slim   the Debian stand-in + this machine's node binary (N = its major)
#   local/distroless-nodejs:N    distroless-like: /nodejs/bin/node of the major the image ships (RUNTIME_NODE, from
#                                lib.sh), its shared libraries, CA bundle, zoneinfo (from this Debian host),
#                                passwd/group with nonroot 65532, no shell, USER 65532
#   local/postgres:15            Debian's postgresql-15 + an entrypoint with the official image's semantics
#                                (POSTGRES_PASSWORD_FILE & co., see postgres-entrypoint.sh)
#
# Debian packages come from the mirror this machine's apt is configured with.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FORCE=${FORCE:-0}
NODE_VERSION=$(node -v)
WORK=$(mktemp -d /tmp/stand-ins.XXXXXX)
CHROOT_PROC=
cleanup() {
  [ -z "$CHROOT_PROC" ] || umount "$CHROOT_PROC" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

needed() { # needed IMAGE [LABEL=VALUE]: true when IMAGE must be (re)built
  [ "$FORCE" = 1 ] && return 0
  have_image "$1" || return 0
  if [ -n "${2:-}" ]; then
    [ "$("$DOCKER" image inspect -f "{{index .Config.Labels \"${2%%=*}\"}}" "$1")" = "${2#*=}" ] || return 0
  fi
  return 1
}

# rootfs_tar DIR: the rootfs as a tar stream, numeric owners kept, without apt's caches and package lists
rootfs_tar() {
  tar --numeric-owner -C "$1" --exclude='./var/cache/apt/archives/*.deb' --exclude='./var/cache/apt/*.bin' \
    --exclude='./var/lib/apt/lists/*_*' -c .
}
# import_rootfs DIR IMAGE --change...: a rootfs directory → image, keeping file ownership (COPY would not)
import_rootfs() {
  local dir=$1 image=$2; shift 2
  rootfs_tar "$dir" | "$DOCKER" import "$@" - "$image" >/dev/null
}

# The Debian rootfs: debootstrap's own directory when this run built local/debian (package lists and
# downloaded packages still in it, so the postgres stand-in needs no `apt-get update`), otherwise exported
# from the image.
DEBIAN_ROOTFS=
debian_rootfs() {
  [ -n "$DEBIAN_ROOTFS" ] && return 0
  DEBIAN_ROOTFS=$WORK/debian
  mkdir -p "$DEBIAN_ROOTFS"
  local cid; cid=$("$DOCKER" create "$IMG_DEBIAN" true)
  "$DOCKER" export "$cid" | tar --numeric-owner -C "$DEBIAN_ROOTFS" -x
  "$DOCKER" rm "$cid" >/dev/null
  rm -f "$DEBIAN_ROOTFS/.dockerenv"
}

build_debian() {
  local mirror; mirror=$(debian_uri bookworm)
  [ -n "$mirror" ] || die "no Debian URI for bookworm in $DEBIAN_SOURCES"
  local r=$WORK/debootstrap
  # dpkg without fsync, as the official Debian images configure it (debootstrap's dpkg runs in the target)
  mkdir -p "$r/etc/dpkg/dpkg.cfg.d"
  echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  timed "debootstrap --variant=minbase bookworm" \
    debootstrap --variant=minbase bookworm "$r" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; die debootstrap; }
  timed "docker import $IMG_DEBIAN" import_rootfs "$r" "$IMG_DEBIAN" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]'
  DEBIAN_ROOTFS=$r
}

build_node() {
  local ctx=$WORK/node
  mkdir -p "$ctx"
  cp "$(readlink -f "$(command -v node)")" "$ctx/node"
  cat >"$ctx/Dockerfile" <<EOF
FROM $IMG_DEBIAN
COPY node /usr/local/bin/node
RUN groupadd -g 1000 node && useradd -u 1000 -g node -s /bin/bash -m node && node --version
LABEL host.node.version=$NODE_VERSION
CMD ["node"]
EOF
  timed "docker build $IMG_NODE" "$DOCKER" build -q --network=none -t "$IMG_NODE" "$ctx" >/dev/null
}

# The host is Debian bookworm too: node, the shared libraries it links (as ldd resolves them here), the CA
# bundle and zoneinfo come from the host, which is what the node binary was built against.
build_distroless() {
  local r=$WORK/distroless l
  mkdir -p "$r/nodejs/bin" "$r/lib/x86_64-linux-gnu" "$r/lib64" "$r/etc/ssl/certs" "$r/tmp" "$r/home/nonroot" \
    "$r/usr/share" "$r/root"
  cp "$(readlink -f "$RUNTIME_NODE")" "$r/nodejs/bin/node"
  for l in $(ldd "$r/nodejs/bin/node" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do
    cp -L "$l" "$r/lib/x86_64-linux-gnu/$(basename "$l")"
  done
  cp -L /lib64/ld-linux-x86-64.so.2 "$r/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
  ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$r/lib64/ld-linux-x86-64.so.2"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$r/etc/group"
  echo 'hosts: files dns' >"$r/etc/nsswitch.conf"
  cat /usr/share/ca-certificates/mozilla/*.crt >"$r/etc/ssl/certs/ca-certificates.crt"
  cp -a /usr/share/zoneinfo "$r/usr/share/zoneinfo"
  chmod 1777 "$r/tmp"; chmod 0700 "$r/root"; chown 65532:65532 "$r/home/nonroot"
  timed "docker import $IMG_DISTROLESS" import_rootfs "$r" "$IMG_DISTROLESS" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/nodejs/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' --change 'ENTRYPOINT ["/nodejs/bin/node"]' \
    --change "LABEL host.node.version=$RUNTIME_NODE_VERSION"
  "$DOCKER" run --rm --network=none "$IMG_DISTROLESS" -e 'if (process.getuid() !== 65532) process.exit(1)' \
    || die "$IMG_DISTROLESS does not run node as 65532"
}

build_postgres() {
  debian_rootfs
  local r=$WORK/postgres
  cp -a "$DEBIAN_ROOTFS" "$r"
  # no cluster at install time, no service start in the chroot
  mkdir -p "$r/etc/postgresql-common/createcluster.d"
  echo 'create_main_cluster = false' >"$r/etc/postgresql-common/createcluster.d/no-main.conf"
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod +x "$r/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  if mount -t proc proc "$r/proc" 2>/dev/null; then CHROOT_PROC=$r/proc; fi
  local update='apt-get update -q &&'
  ! compgen -G "$r/var/lib/apt/lists/*_Packages" >/dev/null || update=   # debootstrap's lists are fresh
  timed "chroot apt-get install postgresql-15" chroot "$r" /bin/sh -c \
    "export DEBIAN_FRONTEND=noninteractive; $update apt-get install -y -q --no-install-recommends postgresql-15" \
    >"$WORK/pg-apt.log" 2>&1 || { tail -20 "$WORK/pg-apt.log" >&2; die "apt-get install postgresql-15 in chroot"; }
  [ -z "$CHROOT_PROC" ] || { umount "$CHROOT_PROC"; CHROOT_PROC=; }
  rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/resolv.conf"
  mkdir -p "$r/var/lib/postgresql/data"
  chown postgres:postgres "$r/var/lib/postgresql/data" 2>/dev/null || chroot "$r" chown postgres:postgres /var/lib/postgresql/data
  install -m 0755 "$HERE/postgres-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
  # docker import cannot set STOPSIGNAL (the official image's is SIGINT: fast shutdown), so a one-line build does
  rootfs_tar "$r" | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/15/bin' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' --change 'ENV LANG=C.UTF-8' \
    --change 'VOLUME /var/lib/postgresql/data' --change 'EXPOSE 5432' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["postgres"]' - "$IMG_POSTGRES-rootfs" >/dev/null
  printf 'FROM %s\nSTOPSIGNAL SIGINT\nLABEL stand-in.entrypoint.sha256=%s\n' "$IMG_POSTGRES-rootfs" "$PG_ENTRYPOINT_SUM" \
    | timed "docker import+build $IMG_POSTGRES" "$DOCKER" build -q --network=none -t "$IMG_POSTGRES" - >/dev/null
  "$DOCKER" rmi "$IMG_POSTGRES-rootfs" >/dev/null   # only untags: it is the parent of $IMG_POSTGRES
}

built=0
if needed "$IMG_DEBIAN"; then build_debian; built=1; FORCE=1; fi   # everything else derives from it
if needed "$IMG_NODE" "host.node.version=$NODE_VERSION"; then build_node; built=1; fi
if needed "$IMG_DISTROLESS" "host.node.version=$RUNTIME_NODE_VERSION"; then build_distroless; built=1; fi
PG_ENTRYPOINT_SUM=$(sha256sum "$HERE/postgres-entrypoint.sh" | cut -c1-16)
if needed "$IMG_POSTGRES" "stand-in.entrypoint.sha256=$PG_ENTRYPOINT_SUM"; then
  build_postgres; built=1
fi
if [ $built = 1 ]; then
  "$DOCKER" image prune -f >/dev/null   # a re-import leaves the previous image dangling
else
  say "stand-in images present: $IMG_DEBIAN $IMG_NODE $IMG_DISTROLESS $IMG_POSTGRES"
fi
