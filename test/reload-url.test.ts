/**
 * SIDECAR_RELOAD_URL is a secret, like the heartbeat's: chat and CI hooks carry their token in the
 * path (Slack's /services/T…/B…/…, GitHub's …/dispatches with a token), so only its origin is ever
 * logged; it has a _FILE form; and the POST never follows a redirect (one could send the change
 * notice, over plain http, to a host the operator never named).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FAST, glitchtipEnv, runCommand, startFake } from './helpers/sidecar.js';
import { makeTempDir } from './helpers/temp-dir.js';

const TOKEN = 'T0KEN-b7f3c1a9e2d4';
const HOOK_PATH = `/services/T000/B000/${TOKEN}`;

/** A receiver that records each request and answers with `answer(request)`. */
async function receiver(answer: (request: http.IncomingMessage) => { status: number; headers?: Record<string, string> }) {
  const calls: { method: string; url: string }[] = [];
  const server = http.createServer((request, response) => {
    calls.push({ method: request.method ?? '', url: request.url ?? '' });
    request.resume();
    request.on('end', () => {
      const { status, headers } = answer(request);
      response.writeHead(status, headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

/** `once` writing the first set, with a reload on that first write: one POST before it exits. */
async function onceWithReload(reload: Record<string, string>) {
  const fake = await startFake();
  const dir = makeTempDir('reload-url-');
  return runCommand(['once'], glitchtipEnv(fake, dir, { ...FAST, SIDECAR_RELOAD_ON_FIRST_WRITE: 'true', SIDECAR_WATCH: 'false', ...reload }));
}

const everything = (result: Awaited<ReturnType<typeof runCommand>>) => `${result.stdout}\n${result.stderr}\n${result.logs.text()}`;

describe('the reload URL is a secret', () => {
  it('only its origin reaches the logs, at start and when the receiver fails', async () => {
    const hook = await receiver(() => ({ status: 500 }));
    const result = await onceWithReload({ SIDECAR_RELOAD_URL: `${hook.origin}${HOOK_PATH}?token=${TOKEN}` });
    expect(result.code).toBe(0);
    expect(hook.calls).toEqual([{ method: 'POST', url: `${HOOK_PATH}?token=${TOKEN}` }]);
    const starting = result.logs.lines().find((line) => line.msg === 'starting') as { config: { reload: { url: string } } };
    expect(starting.config.reload.url).toBe(hook.origin);
    expect(result.logs.lines().find((line) => line.msg === 'reload action failed; it runs again on the next change')).toMatchObject({ err: `POST ${hook.origin}: HTTP 500` });
    expect(everything(result)).not.toContain(TOKEN);
    expect(everything(result)).not.toContain('/services/');
  });

  it('SIDECAR_RELOAD_URL_FILE reads it from a Compose secret file (trailing newline as gopass prints it)', async () => {
    const hook = await receiver(() => ({ status: 204 }));
    const file = path.join(makeTempDir('reload-url-file-'), 'reload-url');
    writeFileSync(file, `${hook.origin}${HOOK_PATH}\n`, { mode: 0o400 });
    const result = await onceWithReload({ SIDECAR_RELOAD_URL_FILE: file });
    expect(result.code).toBe(0);
    expect(hook.calls).toEqual([{ method: 'POST', url: HOOK_PATH }]);
    expect(everything(result)).not.toContain(TOKEN);
  });

  it('a redirect is not followed: the notice goes nowhere else, and the reload counts as failed', async () => {
    const elsewhere = await receiver(() => ({ status: 204 }));
    const hook = await receiver(() => ({ status: 307, headers: { location: `${elsewhere.origin}/stolen` } }));
    const result = await onceWithReload({ SIDECAR_RELOAD_URL: `${hook.origin}${HOOK_PATH}` });
    expect(hook.calls).toHaveLength(1);
    expect(elsewhere.calls).toEqual([]);
    expect(result.logs.lines().find((line) => line.msg === 'reload action failed; it runs again on the next change')).toMatchObject({ err: `POST ${hook.origin}: HTTP 307: redirect not followed` });
    expect(everything(result)).not.toContain(TOKEN);
  });
});
