#!/bin/sh
# Helm post-renderer: adds the infisical-sidecar to the GlitchTip chart's Deployments as a native sidecar.
#   helm install glitchtip glitchtip/glitchtip -f my-values.yaml -f deploy/kubernetes/helm/values.yaml \
#     --post-renderer deploy/kubernetes/helm/post-render.sh
# Helm writes the rendered manifests to stdin and applies what this prints. Needs kubectl (its built-in
# kustomize); KUBECTL=... names another binary, e.g. KUBECTL="kustomize" with a standalone kustomize.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/kustomization.yaml" "$here/sidecar-patch.yaml" "$work/"
cat >"$work/rendered.yaml"
case "${KUBECTL:-kubectl}" in
  kustomize) kustomize build "$work" ;;
  *) "${KUBECTL:-kubectl}" kustomize "$work" ;;
esac
