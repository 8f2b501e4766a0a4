# infisical-sidecar: fetches secrets from Infisical into a shared (tmpfs) volume and serves /healthz.
#
# Build (production; pulls the official base images named below, installs from package-lock.json inside the
# build, so a fresh clone needs nothing but Docker with BuildKit — the default builder of current Docker; with
# Docker 20.10 set DOCKER_BUILDKIT=1):
#   docker build -t infisical-sidecar .
# Behind a TLS-intercepting proxy, hand the build its CA bundle as a secret (mounted for `npm ci` only, never
# in a layer or the image's history):
#   docker build --secret id=npm_ca,src=/etc/ssl/certs/ca-certificates.crt -t infisical-sidecar .
# Offline, from the host's `npm ci` result (what the tests use; works with `--network=none`):
#   npm ci && docker build --build-arg DEPS=host -t infisical-sidecar .
# Both ways install the same locked versions and produce the same bundle (test/e2e/build-both.sh compares
# them); scripts/docker/build.sh is the one build command the e2e test and the release workflow share.
#
# The build stage only bundles src/main.ts and its production dependencies with esbuild into ESM files, so the
# runtime image carries no node_modules, no npm, no compiler and no shell (distroless).
# Runtime: uid 65532, read-only root filesystem friendly (writes only to SIDECAR_OUTPUT_DIR, a volume).
# See compose.override.yml and docs/production.md.

ARG BUILD_IMAGE=node:22-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs22-debian12:nonroot
# Where the build stage's node_modules come from: `registry` (npm ci from the lock file, inside the build) or
# `host` (the build context's node_modules, from `npm ci` on the host).
ARG DEPS=registry

FROM ${BUILD_IMAGE} AS deps-registry
WORKDIR /src
# --ignore-scripts: no dependency needs an install script for bundling (esbuild's only replaces its JS launcher
# with the native binary, which it finds without it), and none runs with the proxy's CA in reach.
# The npm cache is a cache mount and the CA a secret mount: neither is written into a layer.
RUN --mount=type=bind,source=package.json,target=/src/package.json \
    --mount=type=bind,source=package-lock.json,target=/src/package-lock.json \
    --mount=type=cache,target=/root/.npm,sharing=locked \
    --mount=type=secret,id=npm_ca,target=/run/secrets/npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi \
 && npm ci --ignore-scripts --no-audit --no-fund --loglevel=warn

FROM ${BUILD_IMAGE} AS deps-host
WORKDIR /src
COPY node_modules/ /src/node_modules/

FROM deps-${DEPS} AS build
# Sources are bind-mounted, not copied. Code splitting keeps /app/main.js small: what a subcommand imports
# dynamically is parsed only when used, so the HEALTHCHECK (a node start every few seconds) does not parse the
# whole program. `require` is provided for the CommonJS dependencies that esbuild wraps inside the ESM output.
# @infisical/sdk imports four AWS packages at its top level for AWS IAM auth only, which the sidecar never uses
# (it logs in with Universal Auth): they are aliased to a stub that throws, so every start loads ~0.9 MB less
# code (measured with `npx tsx bench/profile.ts variants`). Likewise what Fastify requires but the sidecar never
# runs (build/stubs/, each file says why it is never reached): the JSON-schema compilers (ajv, ajv-formats,
# fast-uri, fast-json-stringify; the routes declare no schema) and light-my-request (`inject()`, tests only):
# ~310 kB less, ~1.5 MB less RSS at start; `npx tsx bench/bundle-parity.ts` checks the bundle answers every
# route like dist/.
# --minify: a third less code for V8 to read and compile at every start (issue 19, bench/RESULTS.md); names
# are not relied on (errors carry their own `code`). /out/app/package.json says "ESM" so that Node does not
# first try each file as CommonJS (its detection of module syntax), as the bench runs it.
# /out/var-cache/node-compile-cache receives Node's compile cache in the runtime stage (below).
# /out/var-cache/infisical-sidecar becomes the encrypted cache's mount point (a new named volume copies its
# owner and mode); copied with its parent, as COPY gives a destination directory it creates mode 0755, and
# owned here rather than by COPY --chown, which would also give 65532 the parents it creates (/var, /var/cache).
RUN --mount=type=bind,source=src,target=/src/src \
    --mount=type=bind,source=build,target=/src/build \
    --mount=type=bind,source=package.json,target=/src/package.json \
    --mount=type=bind,source=tsconfig.json,target=/src/tsconfig.json \
    node_modules/.bin/esbuild src/main.ts --bundle --splitting --platform=node --format=esm --target=node20 \
      --alias:@aws-sdk/credential-providers=./src/infisical/aws-iam-auth-stub.ts \
      --alias:@smithy/protocol-http=./src/infisical/aws-iam-auth-stub.ts \
      --alias:@smithy/signature-v4=./src/infisical/aws-iam-auth-stub.ts \
      --alias:@aws-crypto/sha256-js=./src/infisical/aws-iam-auth-stub.ts \
      --alias:@fastify/ajv-compiler=./build/stubs/fastify-schema-compilers.cjs \
      --alias:@fastify/fast-json-stringify-compiler=./build/stubs/fastify-schema-compilers.cjs \
      --alias:light-my-request=./build/stubs/light-my-request.cjs \
      --banner:js="import{createRequire}from'module';const require=createRequire(import.meta.url);" \
      --outdir=/out/app --entry-names=[name] --chunk-names=chunks/[name]-[hash] \
      --minify --legal-comments=eof --log-level=warning \
 && echo '{"type":"module"}' >/out/app/package.json \
 && node /out/app/main.js help >/dev/null \
 && install -d -m 0700 -o 65532 -g 65532 /out/var-cache/infisical-sidecar \
 && install -d -m 0755 -o 65532 -g 65532 /out/var-cache/node-compile-cache

FROM ${RUNTIME_IMAGE}
# /nodejs/bin is where distroless keeps node; /usr/local/bin where the node:* images do.
ENV PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NODE_ENV=production \
    SIDECAR_OUTPUT_DIR=/secrets \
    SIDECAR_HEALTH_PORT=8080
WORKDIR /app
COPY --from=build /out/app/ /app/
COPY --from=build /out/var-cache/ /var/cache/
# Numeric, so that runAsNonRoot-style checks can verify it. Compose overrides the group (65532:5000) so that
# the written files are readable by the consuming application's group.
USER 65532:65532
# Node's module compile cache (issue 19): V8's compiled code for the modules a start loads, produced here by
# the runtime's own node (a cache from another Node version, other V8 flags or another uid is ignored: Node
# keys its directory by version, flags and uid, hence after USER), then only read at run time, so it works
# with a read-only root filesystem (a miss is compiled as usual and its write fails silently). `help` loads
# everything `run`/`once` load before their first write; what loads later (metrics, watcher, status,
# compose-override, pino-pretty) is compiled when used. A container run as another uid simply gets no hits.
# NODE_DISABLE_COMPILE_CACHE=1 turns it off; NODE_DEBUG_NATIVE=COMPILE_CACHE shows each hit ("accepted").
# The cache holds what V8 compiles when a module is compiled, before it runs (its top level, not the functions
# compiled lazily on first call), so filling it with `once` against a server gives the very same bytes as `help`.
# --max-semi-space-size=2 (MiB, V8's young generation; default grows to 16): RSS after 1,000 refreshes 1.07× the
# floor loop instead of 1.22× (`BENCH_MEMORY_NODE=shipped npm run bench -- --only memory`: 119 MB instead of
# 143 MB on Node 22), at no measurable cost in start-up time (`npx tsx bench/profile.ts variants --only
# image,no-flags`). It is written in each command rather than in NODE_OPTIONS, which a deployment may set for its
# own reasons; V8's flags are part of the cache's key, so the RUN that fills it names the ENTRYPOINT's flags (a
# start with other flags only misses the cache). The HEALTHCHECK has none: it is short-lived and loads a few kB.
ENV NODE_COMPILE_CACHE=/var/cache/node-compile-cache
RUN ["node", "--max-semi-space-size=2", "/app/main.js", "help"]
EXPOSE 8080
STOPSIGNAL SIGTERM
# Exec form: there is no shell in the runtime image. Compose tightens the interval for start-up gating.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/app/main.js", "healthcheck"]
ENTRYPOINT ["node", "--max-semi-space-size=2", "/app/main.js"]
CMD ["run"]

ARG RUNTIME_IMAGE
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="infisical-sidecar" \
      org.opencontainers.image.description="Fetches secrets from Infisical into a shared tmpfs volume, atomically, and serves a freshness-aware /healthz" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
