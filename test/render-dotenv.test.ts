/**
 * The dotenv dialect: exact quoting rules, skip rules, the strict reference parser, and a property
 * test that every value the writer keeps parses back byte-exact. Which readers agree with the
 * dialect is documented (and was cross-checked) in docs/output-formats.md.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dotenvSkipReason, needsDoubleQuotes, parseDotenv, quoteDotenvValue, renderDotenv } from '../src/render/index.js';

describe('quoteDotenvValue', () => {
  it.each([
    ['plain', 'plain', `'plain'`],
    ['empty', '', `''`],
    ['double quote stays literal in single quotes', 'say "hi"', `'say "hi"'`],
    ['single backslash stays in single quotes', String.raw`C:\x`, String.raw`'C:\x'`],
    ['$ stays literal in single quotes', '$HOME', `'$HOME'`],
    ['single quote forces double quotes', "it's", `"it's"`],
    ['newline is escaped', 'a\nb', String.raw`"a\nb"`],
    ['CR is escaped', 'a\rb', String.raw`"a\rb"`],
    ['doubled backslash forces double quotes and is escaped', String.raw`a\\b`, String.raw`"a\\\\b"`],
    ['double quote is escaped inside double quotes', `'"`, String.raw`"'\""`],
    ['literal backslash-n next to a newline', 'x\\n\n', String.raw`"x\\n\n"`],
  ])('%s', (_name, value, expected) => {
    expect(quoteDotenvValue(value)).toBe(expected);
  });
});

describe('dotenv skip rules', () => {
  it.each([
    ['KEY', 'plain', undefined],
    ['db.url', 'v', 'not-an-env-name'],
    ['KEY', 'a\0b', 'contains-nul'],
    ['KEY', '${HOME}', 'dotenv-interpolation'],
    ['KEY', 'x${', 'dotenv-interpolation'],
    ['KEY', "it's $5", 'dotenv-interpolation'],
    ['KEY', 'a\n$', 'dotenv-interpolation'],
    ['KEY', '$5', undefined],
    ['KEY', '$ABC', undefined],
    ['KEY', '\\', 'dotenv-trailing-backslash'],
    ['KEY', 'a\nb\\', 'dotenv-trailing-backslash'],
  ] as const)('%s=%j → %s', (key, value, reason) => {
    expect(dotenvSkipReason(key, value)).toBe(reason);
  });

  it('lists skipped keys with the output path and keeps the rest', () => {
    const snapshot = new Map([
      ['OK', 'v'],
      ['BAD.KEY', 'v'],
      ['INTERP', '${X}'],
    ]);
    const { content, skipped } = renderDotenv(snapshot, 'app/.env');
    expect(content.toString('utf8').split('\n').slice(1)).toEqual([`OK='v'`, '']);
    expect(skipped).toEqual([
      { key: 'BAD.KEY', output: 'app/.env', reason: 'not-an-env-name' },
      { key: 'INTERP', output: 'app/.env', reason: 'dotenv-interpolation' },
    ]);
  });
});

describe('parseDotenv (reference parser)', () => {
  it('reads comments, blank lines, both quote styles and the four escapes', () => {
    const text = `# header\n\nA='x "y" $z \\q'\nB="it's\\n\\r\\\\ \\""\nC=''\nD="\\$"\n`;
    expect(parseDotenv(text)).toEqual(
      new Map([
        ['A', 'x "y" $z \\q'],
        ['B', `it's\n\r\\ "`],
        ['C', ''],
        ['D', '$'],
      ]),
    );
  });

  it.each([
    ['A=1', 'dotenv: the file must end with a newline'],
    ['A=1\n', 'dotenv line 1 (A): the value must be in single or double quotes'],
    ['a b=1\n', `dotenv line 1: expected KEY='value' or KEY="value"`],
    ["A='x'\nA='y'\n", 'dotenv line 2: key A is assigned twice'],
    ["A='it's'\n", 'dotenv line 1 (A): single quote inside a single-quoted value'],
    ['A="a"b"\n', 'dotenv line 1 (A): unescaped double quote at value offset 1'],
    ['A="$x"\n', 'dotenv line 1 (A): unescaped $ at value offset 0 (compose would interpolate it)'],
    ['A="\\t"\n', 'dotenv line 1 (A): unknown escape at value offset 0'],
    ['A="x\\"\n', 'dotenv line 1 (A): unknown escape at value offset 1'],
    ["A='\r'\n", 'dotenv line 1 (A): raw carriage return; the dialect writes \\r'],
  ])('rejects %j', (text, message) => {
    expect(() => parseDotenv(text)).toThrow(new SyntaxError(message));
  });
});

/** Values biased towards what dotenv readers trip over; any Unicode, NUL included. */
const dotenvValue = fc
  .array(
    fc.oneof(
      fc.constantFrom("'", '"', '\\', '\\\\', '$', '${', '}', '\n', '\r', '#', ' #', ' ', '\t', '=', 'export ', '\\n', '\u2028', '\u0085', '\0', '😀'),
      fc.string({ unit: 'binary', maxLength: 4 }),
    ),
    { maxLength: 10 },
  )
  .map((parts) => parts.join(''));

describe('dotenv property', () => {
  it('every kept value parses back byte-exact, one line per key; every skip has its reason', () => {
    fc.assert(
      fc.property(fc.array(dotenvValue, { minLength: 1, maxLength: 200 }), (values) => {
        const snapshot = new Map(values.map((value, i) => [`K${i}`, value]));
        const { content, skipped } = renderDotenv(snapshot);
        const text = content.toString('utf8');
        const parsed = parseDotenv(text);
        const skippedReasons = new Map(skipped.map((entry) => [entry.key, entry.reason]));
        for (const [key, value] of snapshot) {
          expect(skippedReasons.get(key)).toBe(dotenvSkipReason(key, value));
          if (!skippedReasons.has(key)) expect(parsed.get(key)).toBe(value);
        }
        expect(parsed.size + skipped.length).toBe(snapshot.size);
        expect(text.split('\n').length).toBe(parsed.size + 2); // header + one line each + final ''
      }),
      { numRuns: 300 },
    );
  });

  it('single-quoted lines never contain a quote, CR, LF or doubled backslash; double-quoted never a raw $', () => {
    fc.assert(
      fc.property(dotenvValue, (value) => {
        if (dotenvSkipReason('K', value) !== undefined) return;
        const quoted = quoteDotenvValue(value);
        if (needsDoubleQuotes(value)) {
          expect(quoted).not.toMatch(/[$\n\r]/);
        } else {
          expect(quoted.slice(1, -1)).not.toMatch(/['\n\r]|\\\\/);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
