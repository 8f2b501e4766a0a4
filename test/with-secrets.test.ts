/**
 * The consumer wrapper, run by real shells against a directory written by the real writer:
 * exports the values, restarts the app (exit 75) when the revision changes, forwards signals.
 *
 * The wrapper polls with its own `sleep`; the test never sleeps. The wrapper's PATH starts with a
 * `sleep` that notes each call in a log before it becomes the real one, so "three more polls saw the
 * same revision" is read from that log, not from a clock.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AtomicDirWriter } from '../src/output/atomic-dir.js';
import { renderShellEnv } from '../src/render/index.js';
import { renderWithSecrets } from '../src/render/with-secrets.js';
import { makeTempDir } from './helpers/temp-dir.js';
import { waitFor } from './helpers/wait.js';

const SHELLS = ['/bin/dash', '/bin/bash'].filter((shell) => existsSync(shell));

async function writeSet(dir: string, values: Record<string, string>, writer = new AtomicDirWriter(dir)) {
  const env = renderShellEnv(new Map(Object.entries(values)));
  await writer.write(
    [
      { path: 'secrets.env', content: env.content },
      { path: 'with-secrets.sh', content: renderWithSecrets('secrets.env') },
    ],
    { mode: 0o440 },
  );
  return writer;
}

const REAL_SLEEP = execFileSync('/bin/sh', ['-c', 'command -v sleep'], { encoding: 'utf8' }).trim();

/** A directory holding a `sleep` that appends "<its pid> <parent pid> <args>" to `log`, then execs the real one. */
function recordingSleep(): { bin: string; log: string } {
  const bin = makeTempDir();
  const log = path.join(bin, 'sleeps.log');
  writeFileSync(log, '');
  writeFileSync(path.join(bin, 'sleep'), `#!/bin/sh\necho "$$ $PPID $*" >> '${log}'\nexec '${REAL_SLEEP}' "$@"\n`, { mode: 0o755 });
  return { bin, log };
}

interface Poll {
  /** The poll's `sleep` process. */
  readonly pid: number;
  readonly args: string;
}

function startWrapper(shell: string, dir: string, command: string[], env: Record<string, string> = {}) {
  const sleeps = recordingSleep();
  const child = spawn(shell, [path.join(dir, 'with-secrets.sh'), ...command], { env: { PATH: `${sleeps.bin}:${process.env.PATH}`, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  /** The wrapper's own sleeps (its polls, and a restart delay), in order; the app's sleeps are left out. */
  const polls = (): Poll[] =>
    readFileSync(sleeps.log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(' '))
      .filter(([, parent]) => Number(parent) === child.pid)
      .map(([pid, , ...args]) => ({ pid: Number(pid), args: args.join(' ') }));
  // A wrapper killed mid-test leaves its app and sleeps behind: stop every process the log names.
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    const pids = (existsSync(sleeps.log) ? readFileSync(sleeps.log, 'utf8') : '')
      .split('\n')
      .filter(Boolean)
      .flatMap((line) => line.split(' ').slice(0, 2).map(Number))
      .filter((pid) => pid !== child.pid && pid > 1);
    for (const pid of new Set(pids)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  /** Resolves once the wrapper has started its `count`th sleep. */
  const whenPolls = (count: number) =>
    waitFor(() => {
      if (child.exitCode !== null) throw new Error(`the wrapper exited with ${child.exitCode}: ${stderr}`);
      return polls().length >= count;
    }, `the wrapper's sleep #${count}`);
  return { child, exited, stdout: () => stdout, stderr: () => stderr, polls, whenPolls };
}

/**
 * Resolves once the wrapper has checked the revision `count` more times: a poll checks after its
 * sleep and then starts the next sleep, so `count` checks are done once `count + 1` more sleeps began.
 */
async function checksMore(wrapper: ReturnType<typeof startWrapper>, count: number): Promise<void> {
  await wrapper.whenPolls(wrapper.polls().length + count + 1);
}

/** An app that prints `ready` once its TERM trap is set, then runs until stopped. */
const appTrappingTerm = (onTerm: string) => ['sh', '-c', `trap '${onTerm}' TERM; echo ready; while :; do sleep 0.1; done`];

/**
 * Waits until both ends handle signals: the app said `ready` (its trap is set), and the wrapper began
 * its first poll `sleep` (the poll loop begins after the wrapper's trap).
 */
async function watching(wrapper: ReturnType<typeof startWrapper>): Promise<void> {
  await wrapper.whenPolls(1);
  await waitFor(() => wrapper.stdout().includes('ready\n'), 'the app ready');
}

describe.each(SHELLS)('with-secrets.sh in %s', (shell) => {
  it('exports every value byte-exact and execs the command', async () => {
    const dir = makeTempDir();
    await writeSet(dir, { SECRET_KEY: `it's $HOME \`x\`\nline2 `, EMAIL_URL: 'smtp://a%40b:p@h:25' });
    const result = spawnSync(shell, [path.join(dir, 'with-secrets.sh'), 'sh', '-c', 'printf "%s|%s" "$SECRET_KEY" "$EMAIL_URL"'], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`it's $HOME \`x\`\nline2 |smtp://a%40b:p@h:25`);
  });

  it('stops the app and exits 75 when the secrets change, not when a file is only restored', async () => {
    const dir = makeTempDir();
    const writer = await writeSet(dir, { A: '1' });
    const marker = path.join(makeTempDir(), 'terminated');
    const wrapper = startWrapper(shell, dir, appTrappingTerm(`echo term > ${marker}; exit 0`), {
      WITH_SECRETS_RESTART: 'true',
      WITH_SECRETS_POLL: '0.1',
    });
    await watching(wrapper);
    await writer.repair({ mode: 0o440 }); // nothing damaged: no new version
    // Three more checks see the same revision: the wrapper must still be running.
    await checksMore(wrapper, 3);
    expect(wrapper.child.exitCode).toBeNull();
    expect(wrapper.stderr()).not.toContain('secrets changed');

    await writeSet(dir, { A: '2' }, writer);
    expect(await wrapper.exited).toBe(75);
    expect(readFileSync(marker, 'utf8')).toBe('term\n');
    expect(wrapper.stderr()).toContain('with-secrets: secrets changed (revision 1 -> 2)');
    expect(wrapper.stderr()).not.toContain('A=');
  });

  it('skips the restart delay when a WITH_SECRETS_PROMPT_FILES file changed (a database password), and keeps it otherwise', async () => {
    const writeWithKey = (dir: string, a: string, db: string, writer = new AtomicDirWriter(dir)) =>
      writer
        .write(
          [
            { path: 'secrets.env', content: renderShellEnv(new Map([['A', a], ['DB', db]])).content },
            { path: 'keys/DB', content: Buffer.from(db) },
            { path: 'with-secrets.sh', content: renderWithSecrets('secrets.env') },
          ],
          { mode: 0o440 },
        )
        .then(() => writer);
    for (const [change, delay] of [['db', '0s'], ['other', '600s']] as const) {
      const dir = makeTempDir();
      const writer = await writeWithKey(dir, '1', 'old password');
      const wrapper = startWrapper(shell, dir, appTrappingTerm('exit 0'), {
        WITH_SECRETS_RESTART: 'true',
        WITH_SECRETS_POLL: '0.1',
        WITH_SECRETS_RESTART_DELAY: '600',
        WITH_SECRETS_PROMPT_FILES: 'keys/DB keys/ABSENT',
      });
      await watching(wrapper);
      await writeWithKey(dir, '2', change === 'db' ? 'new password' : 'old password', writer);
      await waitFor(() => wrapper.stderr().includes('restarting in'), `${change}: the change seen`);
      expect(wrapper.stderr()).toContain(`restarting in ${delay}`);
      if (change === 'db') expect(await wrapper.exited).toBe(75);
      else wrapper.child.kill('SIGKILL');
      expect(wrapper.stderr()).not.toContain('password');
    }
  });

  it('forwards SIGTERM to the app and exits with its status', async () => {
    const dir = makeTempDir();
    await writeSet(dir, { A: '1' });
    const wrapper = startWrapper(shell, dir, appTrappingTerm('exit 42'), { WITH_SECRETS_RESTART: 'true', WITH_SECRETS_POLL: '0.2' });
    await watching(wrapper);
    wrapper.child.kill('SIGTERM');
    expect(await wrapper.exited).toBe(42);
  });

  it('passes SIGINT on as SIGTERM (a background job ignores INT) and stops without waiting for the next poll', async () => {
    const dir = makeTempDir();
    await writeSet(dir, { A: '1' });
    const wrapper = startWrapper(shell, dir, appTrappingTerm('exit 42'), { WITH_SECRETS_RESTART: 'true', WITH_SECRETS_POLL: '600' });
    await watching(wrapper);
    const [poll] = wrapper.polls();
    wrapper.child.kill('SIGINT');
    expect(await wrapper.exited).toBe(42);
    // The wrapper left while its poll's `sleep 600` still ran: it did not wait for the next poll.
    expect(poll!.args).toBe('600');
    expect(() => process.kill(poll!.pid, 0), 'the poll sleep still running').not.toThrow();
  });

  it("keeps keys named like the wrapper's own variables away from it: they reach the app only", async () => {
    const dir = makeTempDir();
    // Each of these, sourced into the wrapper, would change it: `started` would restart the app every
    // poll (and print its value), `dir` would hide every rotation, `WITH_SECRETS_RESTART` would
    // override the consumer's choice.
    const hostile = { started: 'hostile-started-value', dir: '/nonexistent', child: '1', now: 'x', WITH_SECRETS_RESTART: 'false', WITH_SECRETS_POLL: '3600' };
    const writer = await writeSet(dir, hostile);
    const wrapper = startWrapper(shell, dir, ['sh', '-c', `printf '%s|%s|%s\\n' "$started" "$dir" "$WITH_SECRETS_RESTART"; trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done`], {
      WITH_SECRETS_RESTART: 'true',
      WITH_SECRETS_POLL: '0.1',
    });
    await watching(wrapper);
    expect(wrapper.stdout()).toContain('hostile-started-value|/nonexistent|false\n');
    // Several checks with the same revision: no restart.
    await checksMore(wrapper, 3);
    expect(wrapper.child.exitCode).toBeNull();
    expect(wrapper.stderr()).not.toContain('secrets changed');

    await writeSet(dir, { ...hostile, A: '2' }, writer);
    expect(await wrapper.exited).toBe(75);
    expect(wrapper.stderr()).toContain('with-secrets: secrets changed (revision 1 -> 2)');
    expect(wrapper.stderr()).not.toContain('hostile-started-value');
  });

  it('exits with the app status when the app ends by itself', async () => {
    const dir = makeTempDir();
    await writeSet(dir, { A: '1' });
    const wrapper = startWrapper(shell, dir, ['sh', '-c', 'sleep 0.3; exit 3'], { WITH_SECRETS_RESTART: 'true', WITH_SECRETS_POLL: '0.1' });
    expect(await wrapper.exited).toBe(3);
  });
});

it('finds at least one POSIX shell to test with', () => {
  expect(SHELLS.length).toBeGreaterThan(0);
});

describe('names a sourcing shell owns', () => {
  it('UID, EUID, PPID, SHELLOPTS, BASHOPTS, BASH_VERSINFO and OPTIND are left out of secrets.env, so POSIX bash and dash still start the app', () => {
    const special = ['UID', 'EUID', 'PPID', 'SHELLOPTS', 'BASHOPTS', 'BASH_VERSINFO', 'OPTIND'];
    const rendered = renderShellEnv(new Map([...special.map((key) => [key, 'x'] as [string, string]), ['KEPT', 'yes']]));
    expect(rendered.skipped.map(({ key, reason }) => `${key}:${reason}`).sort()).toEqual(special.map((key) => `${key}:shell-special`).sort());
    for (const shell of [['bash', '--posix'], ['dash']]) {
      const out = execFileSync(shell[0]!, [...shell.slice(1), '-c', 'set -a; eval "$1"; set +a; printf %s "$KEPT"', 'sh', rendered.content.toString('utf8')], { encoding: 'utf8' });
      expect(out, shell.join(' ')).toBe('yes');
    }
  });
});
