#!/usr/bin/env bash
# Start or stop a dockerd for development (the e2e test does this itself and stops only what it started).
#   scripts/docker/dockerd.sh start   # starts dockerd unless one answers; records the pid when it started one
#   scripts/docker/dockerd.sh stop    # stops only the dockerd recorded by `start`
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PIDFILE=${DOCKERD_PIDFILE:-/tmp/infisical-sidecar-dockerd.pid}
case "${1:-}" in
  start)
    ensure_docker_packages
    dockerd_start
    if [ -n "$DOCKERD_STARTED_PID" ]; then echo "$DOCKERD_STARTED_PID" >"$PIDFILE"; say "started dockerd pid $DOCKERD_STARTED_PID"
    else say "dockerd already running; not recorded"; fi ;;
  stop)
    [ -s "$PIDFILE" ] || { say "no dockerd recorded in $PIDFILE; nothing to stop"; exit 0; }
    dockerd_stop "$(cat "$PIDFILE")"; rm -f "$PIDFILE"; say "stopped" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
