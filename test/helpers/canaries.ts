/**
 * Leak guard for the survive-* suites: canary secret values that must never show up in anything the
 * sidecar prints, serves or exposes. Each test file makes its own `LeakGuard`, seeds the fake with
 * its canaries, feeds everything observable to `observe()`, and asserts `leaks()` is empty at the end.
 *
 * A canary is searched in the forms a careless code path would produce: plain, URL-encoded,
 * JSON-escaped, base64, and each of its lines on its own (a multi-line value split across log lines).
 */
import { randomBytes } from 'node:crypto';
import type { FakeInfisical } from '../fake-infisical/server.js';
import { DEMO_APPLICATION_PATH, DEMO_CLIENT_SECRET, DEMO_DATABASE_PATH, DEMO_ENVIRONMENT } from '../fake-infisical/seed.js';

export interface LeakGuard {
  readonly tag: string;
  /** Makes (and remembers) a canary value; `label` only helps to report which one leaked. */
  canary(label: string, shape?: 'plain' | 'awkward'): string;
  /** Registers a secret that is not ours to make (e.g. a client secret). */
  protect(label: string, value: string): void;
  /** Sets the four GlitchTip keys in the fake to fresh canaries. */
  seed(fake: FakeInfisical): void;
  /** Anything the sidecar printed or served. */
  observe(...texts: (string | undefined | null)[]): void;
  /** Labels of canaries found (never the text around them: that would print the secret). */
  leaks(): string[];
  /** How much text was checked, to prove the check was not vacuous. */
  readonly observedChars: number;
}

/** The forms a leaked value could take; shorter than `minLength` they would match by chance. */
export function forms(value: string, minLength = 12): string[] {
  const candidates = [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1), Buffer.from(value).toString('base64'), ...value.split(/\r?\n/)];
  return [...new Set(candidates)].filter((form) => form.length >= minLength);
}

export function leakGuard(): LeakGuard {
  const tag = randomBytes(5).toString('hex');
  const secrets = new Map<string, string>([['DEMO_CLIENT_SECRET', DEMO_CLIENT_SECRET]]);
  const observed: string[] = [];
  let counter = 0;
  let observedChars = 0;
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
    observe(...texts) {
      for (const text of texts) {
        if (text === undefined || text === null) continue;
        observed.push(text);
        observedChars += text.length;
      }
    },
    leaks() {
      const everything = observed.join('\n');
      const found: string[] = [];
      for (const [label, value] of secrets) if (forms(value).some((form) => everything.includes(form))) found.push(label);
      return found;
    },
    get observedChars() {
      return observedChars;
    },
  };
}
