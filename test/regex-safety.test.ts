/**
 * No regex in src/ backtracks super-linearly: every regex literal is checked with recheck (a ReDoS
 * checker that finds polynomial as well as exponential backtracking), so a hostile secret value,
 * key, server answer or Compose file cannot make one hold the event loop. A regex built at run time
 * (`new RegExp`) cannot be checked this way and is refused. A structural check, not a timing one:
 * (How long /healthz waits while one pass meets several 1 MiB values is not bounded yet: linear work, one synchronous block.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { checkSync } from 'recheck';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { urlHasPassword } from '../src/compose/plan.js';
import { parseDuration } from '../src/config/duration.js';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

interface FoundRegex {
  readonly where: string;
  readonly source: string;
  readonly flags: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** Every regex literal of src/, and every `new RegExp(…)` / `RegExp(…)` call (which this check cannot read). */
function regexesOfSrc(): { literals: FoundRegex[]; dynamic: string[] } {
  const literals: FoundRegex[] = [];
  const dynamic: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const where = (node: ts.Node) => `${path.relative(SRC, file)}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1}`;
    const visit = (node: ts.Node): void => {
      if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) {
        const text = node.getText(source);
        const end = text.lastIndexOf('/');
        literals.push({ where: where(node), source: text.slice(1, end), flags: text.slice(end + 1) });
      }
      if ((ts.isNewExpression(node) || ts.isCallExpression(node)) && node.expression.getText(source) === 'RegExp') dynamic.push(where(node));
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { literals, dynamic };
}

describe('regexes that cannot be made to backtrack', () => {
  const { literals, dynamic } = regexesOfSrc();

  it('finds the regexes of src/ (the scan itself works)', () => {
    expect(literals.length).toBeGreaterThan(50);
  });

  it('every regex literal in src/ is linear for recheck', () => {
    const unsafe = literals
      // No time limit: recheck's default (10 s) turns a slow check on a loaded machine into "unknown".
      .map((regex) => ({ regex, diagnostics: checkSync(regex.source, regex.flags, { timeout: null }) }))
      .filter(({ diagnostics }) => diagnostics.status !== 'safe')
      .map(({ regex, diagnostics }) => `${regex.where} /${regex.source}/${regex.flags}: ${diagnostics.status === 'vulnerable' ? `${diagnostics.complexity.summary}, attack ${JSON.stringify(diagnostics.attack.pattern)}` : diagnostics.status}`);
    expect(unsafe).toEqual([]);
  }, 60_000);

  it('no regex is built at run time', () => {
    expect(dynamic).toEqual([]);
  });
});

describe('scans that replaced backtracking regexes decide the same', () => {
  it('urlHasPassword agrees with the regex it replaced', () => {
    const OLD = /^[a-z][a-z0-9+.-]*:\/\/[^@]*:[^@]+@|[?&]password=[^&]/i;
    const unit = fc.constantFrom('a', 'B', '1', ':', '/', '@', '?', '&', '=', '+', 'p', 'password=');
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 16 }), fc.constantFrom('', 'postgres://', 'x+y.z://', '1a://'), (rest, prefix) => {
        expect(urlHasPassword(prefix + rest)).toBe(OLD.test(prefix + rest));
      }),
      { numRuns: 20_000, seed: 24 },
    );
  });

  it('parseDuration reads each part where the last ended, as the global regex did', () => {
    const part = fc.tuple(fc.nat(999), fc.option(fc.nat(99), { nil: undefined }), fc.constantFrom('ms', 's', 'm', 'h', 'd'));
    const UNIT = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 4 }), (parts) => {
        const text = parts.map(([whole, fraction, unit]) => `${whole}${fraction === undefined ? '' : `.${fraction}`}${unit}`).join('');
        const want = parts.reduce((sum, [whole, fraction, unit]) => sum + Number(`${whole}${fraction === undefined ? '' : `.${fraction}`}`) * UNIT[unit], 0);
        expect(parseDuration(text)).toBe(Math.round(want));
      }),
      { numRuns: 2_000, seed: 24 },
    );
  });
});
