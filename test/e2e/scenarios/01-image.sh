#!/usr/bin/env bash
# The image: adds under 15 MB to its base, runs as 65532 with an exec-form HEALTHCHECK and STOPSIGNAL SIGTERM,
# has no shell; what one healthcheck costs in CPU is reported. Its compose-override, from the seed's compose file,
# is byte-identical to the repository's compose.override.yml, and from `docker compose config --format json`
# differs only in --no-subpath's postgres mount.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start

step "image: size, user, healthcheck, stop signal, no shell"
size() { "$DOCKER" image inspect -f '{{.Size}}' "$1"; }
IMAGE_BYTES=$(size "$IMG_SIDECAR") BASE_BYTES=$(size "$IMG_DISTROLESS")
say "image $IMG_SIDECAR: $((IMAGE_BYTES / 1000)) kB = base $IMG_DISTROLESS $((BASE_BYTES / 1000)) kB + $(((IMAGE_BYTES - BASE_BYTES) / 1000)) kB"
[ $((IMAGE_BYTES - BASE_BYTES)) -lt 15000000 ] || fail "image adds more than 15 MB to its base"
ok "image adds $(((IMAGE_BYTES - BASE_BYTES) / 1000)) kB to its base (limit 15 MB)"
[ "$("$DOCKER" image inspect -f '{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{.Config.StopSignal}}' "$IMG_SIDECAR")" \
  = '65532:65532|["CMD","node","/app/main.js","healthcheck"]|SIGTERM' ] || fail "image USER/HEALTHCHECK/STOPSIGNAL"
"$DOCKER" run --rm --network=none --entrypoint /bin/sh "$IMG_SIDECAR" -c true >/dev/null 2>&1 && fail "the runtime image has a shell"
ok "image: non-root 65532, exec-form HEALTHCHECK, STOPSIGNAL SIGTERM, no shell"
# What one HEALTHCHECK costs (a node start every interval, for the life of the container): the image's
# program run on the host against a closed port, CPU seconds, vs node doing nothing.
mkdir -p "$WORK/app"
c=$("$DOCKER" create "$IMG_SIDECAR") && "$DOCKER" cp "$c:/app/." "$WORK/app/" && "$DOCKER" rm "$c" >/dev/null
cpu() { local TIMEFORMAT='%U %S'; { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ printf "%.2f", $1 + $2 }'; }
HC_CPU=$(SIDECAR_HEALTH_PORT=9 cpu node "$WORK/app/main.js" healthcheck) NODE_CPU=$(cpu node -e 0)
say "one healthcheck costs ${HC_CPU} s CPU (node alone: ${NODE_CPU} s); every 2 s that is $(awk -v c="$HC_CPU" 'BEGIN { printf "%.0f", c / 2 * 100 }') % of a core"
awk -v c="$HC_CPU" -v n="$NODE_CPU" 'BEGIN { exit !(c > n + 0.2) }' \
  && say "WARNING: the healthcheck subcommand loads the whole program; it should import only what it needs"

step "compose-override in the image: the repository's compose.override.yml"
"$DOCKER" run --rm -i --network=none "$IMG_SIDECAR" compose-override <"$FIXTURES/seed.yml" >"$WORK/override-seed-file.yml" 2>/dev/null \
  || fail "compose-override in the image, from the seed's compose file"
cmp -s "$WORK/override-seed-file.yml" "$REPO_ROOT/compose.override.yml" \
  || fail "the image's compose-override of test/fixtures/compose/seed.yml differs from compose.override.yml: $(diff "$WORK/override-seed-file.yml" "$REPO_ROOT/compose.override.yml" | head -5)"
use_layout seed
# the one difference --no-subpath makes: postgres mounts the whole volume (the comment and the mount lines)
diff "$WORK/override-seed.yml" "$REPO_ROOT/compose.override.yml" | grep '^[<>]' | grep -v '^[<>] *#' \
  | grep -vxE '[<>] +(- type: volume|source: glitchtip-secrets|target: /run/glitchtip-secrets/keys|read_only: true|volume:|subpath: keys|- glitchtip-secrets:/run/glitchtip-secrets:ro)' \
  >"$WORK/seed-override.diff" && fail "the seed's generated override differs from compose.override.yml beyond the postgres mount: $(head -5 "$WORK/seed-override.diff")"
ok "compose-override in the image: from seed.yml byte-identical to compose.override.yml; from \`docker compose config --format json\` the same but for --no-subpath's postgres mount; compose config OK"
pass
