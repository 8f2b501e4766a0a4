/**
 * The fast tier stays deterministic: no test or helper in it waits on, or reads, real time except
 * where test/real-time-allowed.ts says why. A busy machine slows real time down unevenly; the manual
 * clock (test/helpers/clock.ts) and waits on events do not care.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REAL_TIME_ALLOWED, REAL_TIME_APIS, type RealTimeApi } from './real-time-allowed.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
/** Not the fast tier: the system tier and the Docker e2e. (Programs under test/tools/ are scanned: fast tests run some.) */
const OTHER_TIERS = ['test/system/', 'test/e2e/'];
const SELF = ['test/hygiene.test.ts', 'test/real-time-allowed.ts'];

function fastTierFiles(dir = 'test'): string[] {
  return readdirSync(path.join(REPO, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return OTHER_TIERS.includes(`${rel}/`) ? [] : fastTierFiles(rel);
    return /\.(ts|mts|mjs|js)$/.test(entry.name) && !SELF.includes(rel) ? [rel] : [];
  });
}

/** The code without its comments (a comment may name an API it does not use). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

const PATTERNS: Record<RealTimeApi, RegExp> = {
  setTimeout: /\bsetTimeout\s*\(/,
  setInterval: /\bsetInterval\s*\(/,
  setImmediate: /\bsetImmediate\s*\(/,
  'node:timers': /['"](node:)?timers(\/promises)?['"]/,
  'AbortSignal.timeout': /\bAbortSignal\.timeout\b/,
  'new Date()': /\bnew Date\(\s*\)/,
  'Date.now': /\bDate\.now\b/,
  'performance.now': /\bperformance\.now\b/,
  'process.hrtime': /\bprocess\.hrtime\b/,
  'Atomics.wait': /\bAtomics\.wait\b/,
};

describe('the fast tier runs on a clock the tests move', () => {
  it('no fast-tier file uses real time but those test/real-time-allowed.ts lists with a reason', () => {
    const found: string[] = [];
    for (const file of fastTierFiles()) {
      const text = code(readFileSync(path.join(REPO, file), 'utf8'));
      for (const api of REAL_TIME_APIS) {
        if (PATTERNS[api].test(text) && !REAL_TIME_ALLOWED.some((use) => use.file === file && use.api === api)) found.push(`${file}: ${api}`);
      }
    }
    expect(found).toEqual([]);
  });

  it('every allowed use still exists and gives a reason (the list shrinks with the code)', () => {
    const stale = REAL_TIME_ALLOWED.filter((use) => {
      const text = code(readFileSync(path.join(REPO, use.file), 'utf8'));
      return !PATTERNS[use.api].test(text) || use.reason.trim().length < 20;
    });
    expect(stale).toEqual([]);
  });
});
