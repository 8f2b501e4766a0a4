#!/usr/bin/env bash
# GlitchTip 6.x's minimal sample layout (one web service with SERVER_ROLE all_in_one, user postgres), with the
# override generated from it in the image: the trust authentication is warned about and replaced; web starts
# after the sidecar is healthy with the byte-exact values and connects with the derived DATABASE_URL; a
# rotation restarts it once.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
scenario_start
sample_layout glitchtip-6-all-in-one
finish
