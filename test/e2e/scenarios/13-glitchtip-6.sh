#!/usr/bin/env bash
# GlitchTip 6.0's sample layout (web, worker, a one-shot migrate, user postgres) with its generated override:
# the sample's trust authentication is warned about and replaced; every service starts after the sidecar is
# healthy, with the byte-exact values; migrate completes with the derived DATABASE_URL; a rotation restarts web
# and worker once each, staggered, and never migrate.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
sample_layout glitchtip-6
finish
