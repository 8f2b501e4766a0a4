/**
 * The one canary table of the test suite: secret values that must never show up in anything the
 * sidecar prints or serves, and the file-wide leak guard that looks for them.
 *
 * The harness records every text a sidecar produced in the test file (captured logs, CLI output,
 * `/healthz` answers, through `recordOutput`); a test adds anything else it read (`observe`: a
 * child's output, /proc, files on disk). `leakGuard()` checks all of it in `afterAll`, so the check
 * covers every test of the file however it is run, and fails when it saw too little to mean anything.
 *
 * A canary is searched in the forms a careless code path would produce: plain, URL-encoded,
 * JSON-escaped, base64, and each of its lines on its own (a multi-line value split across log lines).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, expect } from 'vitest';
import type { FakeInfisical } from '../fake-infisical/server.js';
import { DEMO_APPLICATION_PATH, DEMO_CLIENT_SECRET, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from '../fake-infisical/seed.js';

/** Every text the harness saw a sidecar produce in this test file (vitest gives each file its own module instance). */
const producedInThisFile: string[] = [];

/** Called by the harness for each text a sidecar produced; the file's leak guard checks them all. */
export function recordOutput(text: string): void {
  producedInThisFile.push(text);
}

/** The forms a leaked value could take; shorter than 12 characters they would match by chance. */
export function forms(value: string): string[] {
  const candidates = [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1), Buffer.from(value).toString('base64'), ...value.split(/\r?\n/)];
  return [...new Set(candidates)].filter((form) => form.length >= 12);
}

export interface Canaries {
  /** Random per set, to make identifiers (client ids, probes) that no other run shares. */
  readonly tag: string;
  /** Makes (and remembers) a canary value; `label` only helps to report which one leaked. */
  canary(label: string, shape?: 'plain' | 'awkward'): string;
  /** Registers a secret that is not ours to make (e.g. a client secret). */
  protect(label: string, value: string): void;
  /** Sets the four GlitchTip keys in the fake to fresh canaries. */
  seed(fake: FakeInfisical): void;
  /** Labels of the canaries found in `text` (never the text around them: that would print the secret). */
  leaksIn(text: string): string[];
}

/** A set of canaries, with the demo client secret protected from the start. */
export function canaries(): Canaries {
  const tag = randomBytes(5).toString('hex');
  const secrets = new Map<string, string>([['DEMO_CLIENT_SECRET', DEMO_CLIENT_SECRET]]);
  let counter = 0;
  const canary = (label: string, shape: 'plain' | 'awkward' = 'awkward') => {
    const id = `${label}-${tag}-${++counter}`;
    const value = shape === 'plain' ? `canary-${id}` : `canary-${id} 'q' "d" $x \`b\` @:/%\nline-two-${id}`;
    secrets.set(`${label}#${counter}`, value);
    return value;
  };
  return {
    tag,
    canary,
    protect(label, value) {
      secrets.set(label, value);
    },
    seed(fake) {
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_DATABASE_PATH, 'POSTGRES_PASSWORD', canary('pg'));
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'SECRET_KEY', canary('sk', 'plain'));
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'EMAIL_URL', `smtp://user%40x:${canary('mail', 'plain')}@smtp.example.test:2525`);
      fake.setSecret(DEMO_ENVIRONMENT, DEMO_APPLICATION_PATH, 'DEFAULT_FROM_EMAIL', `${canary('from', 'plain')}@example.test`);
    },
    leaksIn(text) {
      const found: string[] = [];
      for (const [label, value] of secrets) if (forms(value).some((form) => text.includes(form))) found.push(label);
      return found;
    },
  };
}

export interface LeakGuard extends Canaries {
  /** Adds text the harness does not record by itself (a child's output, /proc, files, /metrics). */
  observe(...texts: (string | undefined | null)[]): void;
}

/**
 * Canaries for this test file, and an `afterAll` check that none of them (nor the demo client
 * secret) appears in anything the file's sidecars produced or its tests observed. Call it once, at
 * the top level of the file. `minObservedChars` is how much text the whole file must have produced
 * for the check to mean something.
 */
export function leakGuard(minObservedChars: number): LeakGuard {
  const set = canaries();
  const observed: string[] = [];
  afterAll(() => {
    const everything = [...producedInThisFile, ...observed].join('\n');
    expect(everything.length, 'characters the leak guard checked').toBeGreaterThan(minObservedChars);
    expect(set.leaksIn(everything), 'canaries found in what the sidecar printed or served').toEqual([]);
  });
  return {
    ...set,
    observe(...texts) {
      for (const text of texts) if (text !== undefined && text !== null) observed.push(text);
    },
  };
}
