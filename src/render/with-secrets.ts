/**
 * `with-secrets.sh`: the consumer-side wrapper, written next to the env file in every version.
 *
 * It exports the env file and runs the app. With WITH_SECRETS_RESTART=true it also watches the
 * revision (the number in the `..data` link's target) and, when it changes, stops the app and exits
 * 75, so the container's restart policy starts it again with the new environment: rotation reaches
 * the app without mounting the Docker socket. The revision only moves when content changes (a
 * restored file keeps it), and the wrapper compares against the revision the app *started* with,
 * so a change made while the sidecar was down is caught as well. WITH_SECRETS_RESTART_DELAY staggers
 * services (web, worker, beat) so they are not all down at once.
 *
 * The env file is sourced only by the shell that becomes COMMAND (it `exec`s right after), never
 * by the wrapper itself: a secret is any valid variable name, so a key named `dir`, `started` or
 * `WITH_SECRETS_RESTART` would otherwise overwrite the wrapper's own state.
 *
 * POSIX sh only (dash, bash, busybox); no value is ever printed.
 */

export const WITH_SECRETS_PATH = 'with-secrets.sh';

export function renderWithSecrets(envFile: string): Buffer {
  return Buffer.from(`#!/bin/sh
# with-secrets.sh - written by infisical-sidecar with every version of the secrets; do not edit.
#
#   sh /path/to/secrets/with-secrets.sh COMMAND [ARGS...]
#
# Exports every variable in ${envFile} (next to this file), then runs COMMAND.
#   WITH_SECRETS_RESTART=true      keep watching; when the secrets change, stop COMMAND and exit 75 so
#                                  the restart policy starts the container again with the new values
#   WITH_SECRETS_RESTART_DELAY=0   seconds to wait after a change before restarting (stagger services)
#   WITH_SECRETS_PROMPT_FILES=     files (relative to this one, space-separated) whose change skips the
#                                  delay, e.g. keys/POSTGRES_PASSWORD: once the database has the new
#                                  password, each second of stagger is a second of refused connections
#   WITH_SECRETS_POLL=5            seconds between checks
#   WITH_SECRETS_STOP_TIMEOUT=25   seconds COMMAND gets after SIGTERM before SIGKILL
dir=\${0%/*}
revision() {
  r=$(readlink "$dir/..data" 2>/dev/null) || return 0
  r=\${r#..rev-}
  r=\${r%%-*}
  while [ "\${r#0}" != "$r" ] && [ -n "\${r#0}" ]; do r=\${r#0}; done
  printf '%s' "$r"
}
# Checksums of the prompt files (never their content): compared, not shown.
prompt_sum() {
  [ -n "\${WITH_SECRETS_PROMPT_FILES:-}" ] || return 0
  (set -f; for f in $WITH_SECRETS_PROMPT_FILES; do cksum < "$dir/$f" 2>/dev/null || echo -; done)
}
[ "$#" -gt 0 ] || { echo "with-secrets: usage: with-secrets.sh COMMAND [ARGS...]" >&2; exit 64; }
[ -r "$dir/${envFile}" ] || { echo "with-secrets: cannot read $dir/${envFile}" >&2; exit 78; }
# Sources the secrets in the shell that then becomes COMMAND: they reach the app's environment and
# never this wrapper's variables (a key may be named dir, started or WITH_SECRETS_RESTART).
run_app() {
  set -a
  . "$dir/${envFile}"
  set +a
  exec "$@"
}
case "\${WITH_SECRETS_RESTART:-false}" in
  true | 1 | yes) ;;
  *) run_app "$@" ;;
esac

started=$(revision)
prompt=$(prompt_sum)
run_app "$@" &
child=$!
# A stop request is passed on as TERM: a background job starts with SIGINT ignored, so INT would be
# lost. Then wait for the app and leave with its status, without waiting for the next poll.
stop() {
  kill -TERM "$child" 2>/dev/null
  wait "$child"
  exit $?
}
trap stop TERM INT HUP
while :; do
  sleep "\${WITH_SECRETS_POLL:-5}" &
  wait "$!" 2>/dev/null
  kill -0 "$child" 2>/dev/null || break
  now=$(revision)
  if [ -n "$now" ] && [ "$now" != "$started" ]; then
    delay=\${WITH_SECRETS_RESTART_DELAY:-0}
    [ "$(prompt_sum)" = "$prompt" ] || delay=0
    echo "with-secrets: secrets changed (revision $started -> $now); restarting in \${delay}s" >&2
    sleep "$delay"
    kill -TERM "$child" 2>/dev/null
    (sleep "\${WITH_SECRETS_STOP_TIMEOUT:-25}"; kill -KILL "$child" 2>/dev/null) &
    killer=$!
    wait "$child" 2>/dev/null
    kill "$killer" 2>/dev/null
    exit 75
  fi
done
wait "$child"
`);
}
