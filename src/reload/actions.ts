/**
 * The reload actions an operator can configure. Each receives the revision and the changed key
 * names — never a value — and is bounded by a timeout.
 */
import { spawn } from 'node:child_process';
import { requestFailureReason, urlOrigin } from '../text.js';
import { systemClock, timeoutSignal, type Clock } from '../timers.js';
import type { ChangeEvent, ReloadAction } from './scheduler.js';

/**
 * `SIDECAR_RELOAD_COMMAND`: a JSON array (`["/usr/local/bin/notify","--all"]`, run without a
 * shell: the image has none) or a string run with `/bin/sh -c` where a shell exists. The command
 * gets SIDECAR_REVISION and SIDECAR_CHANGED_KEYS (comma-separated names) in its environment, and
 * only PATH besides: the sidecar's own credentials are not passed on. Its output is not logged,
 * because a careless script might print a secret; only the exit status is.
 */
export function commandAction(command: string, timeoutMs: number, clock: Clock = systemClock): ReloadAction {
  const argv = parseCommand(command);
  return {
    name: 'command',
    run(event: ChangeEvent, signal: AbortSignal) {
      return new Promise<void>((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), {
          stdio: 'ignore',
          env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', SIDECAR_REVISION: String(event.revision), SIDECAR_CHANGED_KEYS: event.changedKeys.join(',') },
          signal: AbortSignal.any([signal, timeoutSignal(clock, timeoutMs)]),
          killSignal: 'SIGKILL',
        });
        child.once('error', (error) => reject(new Error(`${argv[0]}: ${(error as NodeJS.ErrnoException).code === 'ABORT_ERR' ? `timed out after ${timeoutMs} ms` : error.message}`)));
        child.once('exit', (code, killedBy) => {
          if (code === 0) resolve();
          else reject(new Error(`${argv[0]} exited with ${code ?? killedBy}`));
        });
      });
    },
  };
}

export function parseCommand(command: string): string[] {
  const trimmed = command.trim();
  if (trimmed.startsWith('[')) {
    const parsed: unknown = JSON.parse(trimmed);
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((part) => typeof part === 'string')) {
      throw new Error('must be a non-empty JSON array of strings');
    }
    return parsed as string[];
  }
  return ['/bin/sh', '-c', trimmed];
}

/**
 * `SIDECAR_RELOAD_URL`: POST `{"revision":N,"changedKeys":[…]}`; any 2xx is success. The URL is a
 * secret (a hook's token is in its path): errors name its origin only, and are built from status and
 * error codes, never from undici's messages (which may quote the URL). A redirect is not followed:
 * it could carry the notice, over plain http, to a host the operator never named.
 */
export function httpAction(url: string, timeoutMs: number, clock: Clock = systemClock): ReloadAction {
  const origin = urlOrigin(url);
  return {
    name: 'http',
    async run(event, signal) {
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'infisical-sidecar' },
          body: JSON.stringify({ event: 'secrets.changed', revision: event.revision, changedKeys: event.changedKeys }),
          redirect: 'manual',
          signal: AbortSignal.any([signal, timeoutSignal(clock, timeoutMs)]),
        });
      } catch (error) {
        throw new Error(`POST ${origin}: ${requestFailureReason(error, timeoutMs)}`);
      }
      await response.body?.cancel();
      if (response.status >= 300 && response.status < 400) throw new Error(`POST ${origin}: HTTP ${response.status}: redirect not followed`);
      if (!response.ok) throw new Error(`POST ${origin}: HTTP ${response.status}`);
    },
  };
}

