#!/usr/bin/env bash
# GlitchTip 4.x/5.x's sample layout (web, a worker with beat embedded, a one-shot migrate, user postgres) with
# its generated override: the sample's trust authentication is warned about and replaced; every service starts
# after the sidecar is healthy, with the byte-exact values; migrate completes with the derived DATABASE_URL; a
# rotation restarts web and worker once each, staggered, and never migrate.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
sample_layout glitchtip-5
finish
