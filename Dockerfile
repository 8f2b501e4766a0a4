# infisical-sidecar: fetches secrets from Infisical into a shared (tmpfs) volume and serves /healthz.
#
# Build (production; pulls the official base images named below):
#   npm ci && docker build -t infisical-sidecar .
# Dependencies are installed on the host (`npm ci`), never inside the build: the build stage only bundles
# src/main.ts and its production dependencies with esbuild into one ESM file, so the runtime image carries
# no node_modules, no npm, no compiler and no shell (distroless). Needs BuildKit (the default builder of
# current Docker; with Docker 20.10 set DOCKER_BUILDKIT=1). Works offline: `--network=none`.
#
# Runtime: uid 65532, read-only root filesystem friendly (writes only to SIDECAR_OUTPUT_DIR, a volume).
# See compose.override.yml and docs/production.md.

ARG BUILD_IMAGE=node:22-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs22-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# The build context (filtered by .dockerignore) is bind-mounted, not copied: no 100 MB node_modules layer.
# Code splitting keeps /app/main.js small: what a subcommand imports dynamically is parsed only when used, so
# the HEALTHCHECK (a node start every few seconds) does not parse the whole program. `require` is provided for
# the CommonJS dependencies that esbuild wraps inside the ESM output.
# @infisical/sdk imports four AWS packages at its top level for AWS IAM auth only, which the sidecar never uses
# (it logs in with Universal Auth): they are aliased to a stub that throws, so every start loads ~0.9 MB less
# code (measured with `npx tsx bench/profile.ts variants`).
RUN --mount=type=bind,target=/src \
    node_modules/.bin/esbuild src/main.ts --bundle --splitting --platform=node --format=esm --target=node20 \
      --alias:@aws-sdk/credential-providers=./src/infisical/aws-iam-auth-stub.ts \
      --alias:@smithy/protocol-http=./src/infisical/aws-iam-auth-stub.ts \
      --alias:@smithy/signature-v4=./src/infisical/aws-iam-auth-stub.ts \
      --alias:@aws-crypto/sha256-js=./src/infisical/aws-iam-auth-stub.ts \
      --banner:js="import{createRequire}from'module';const require=createRequire(import.meta.url);" \
      --outdir=/out --entry-names=[name] --chunk-names=chunks/[name]-[hash] \
      --legal-comments=eof --log-level=warning \
 && node /out/main.js help >/dev/null

FROM ${RUNTIME_IMAGE}
# /nodejs/bin is where distroless keeps node; /usr/local/bin where the node:* images do.
ENV PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NODE_ENV=production \
    SIDECAR_OUTPUT_DIR=/secrets \
    SIDECAR_HEALTH_PORT=8080
WORKDIR /app
COPY --from=build /out/ /app/
# Numeric, so that runAsNonRoot-style checks can verify it. Compose overrides the group (65532:5000) so that
# the written files are readable by the consuming application's group.
USER 65532:65532
EXPOSE 8080
STOPSIGNAL SIGTERM
# Exec form: there is no shell in the runtime image. Compose tightens the interval for start-up gating.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/app/main.js", "healthcheck"]
ENTRYPOINT ["node", "/app/main.js"]
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
