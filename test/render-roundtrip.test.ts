/**
 * Round trips for the formats that hold every value: JSON through JSON.parse, per-key files through
 * their bytes. Keys and values are arbitrary UTF-16 strings, lone surrogates and NUL included.
 */
import { posix } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isEnvName, isSafeFileName, renderJson, renderKeyFiles } from '../src/render/index.js';

/** Any UTF-16 code unit, so lone surrogates appear too. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
const anyString = fc.oneof(
  fc.string({ unit: codeUnit, maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('', '.', '..', '..data', '__proto__', 'constructor', '10', '2', 'a/b', 'a\0b', '\uD800', 'é'.repeat(128), 'K'.repeat(255), 'K'.repeat(256)),
);
const snapshotArbitrary = fc.array(fc.tuple(anyString, anyString), { maxLength: 40 }).map((entries) => new Map(entries));

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

describe('json round trip', () => {
  it('JSON.parse gives back every key and value exactly, lone surrogates included', () => {
    fc.assert(
      fc.property(snapshotArbitrary, (snapshot) => {
        const { content, skipped } = renderJson(snapshot);
        expect(skipped).toEqual([]);
        const parsed = JSON.parse(content.toString('utf8')) as Record<string, string>;
        expect(new Map(Object.entries(parsed))).toEqual(snapshot);
      }),
      { numRuns: 1000 },
    );
  });

  it('writes one entry per line, 2-space indent, sorted by code units, trailing newline', () => {
    fc.assert(
      fc.property(snapshotArbitrary, (snapshot) => {
        const text = renderJson(snapshot).content.toString('utf8');
        expect(text.endsWith('}\n')).toBe(true);
        if (snapshot.size === 0) {
          expect(text).toBe('{}\n');
          return;
        }
        const lines = text.split('\n');
        expect(lines.length).toBe(snapshot.size + 3);
        const keys = lines.slice(1, -2).map((line, i, all) => {
          expect(line.startsWith('  "')).toBe(true);
          const entry = JSON.parse(`{${line.slice(2, i === all.length - 1 ? undefined : -1)}}`) as Record<string, string>;
          return Object.keys(entry)[0];
        });
        expect(keys).toEqual([...snapshot.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      }),
      { numRuns: 500 },
    );
  });

  it('keeps the file pure UTF-8: lone surrogates are escaped, not replaced', () => {
    const text = renderJson(new Map([['\uDC00', 'x\uD800']])).content.toString('utf8');
    expect(text).toBe('{\n  "\\udc00": "x\\ud800"\n}\n');
  });
});

describe('per-key files round trip', () => {
  it('each safe key gets <dir>/<key> holding exactly the UTF-8 value, no trailing newline; others are skipped', () => {
    fc.assert(
      fc.property(snapshotArbitrary, (snapshot) => {
        const { files, skipped } = renderKeyFiles(snapshot, 'keys');
        const byPath = new Map(files.map((file) => [file.path, file.content]));
        for (const [key, value] of snapshot) {
          if (isSafeFileName(key)) {
            const content = byPath.get(`keys/${key}`);
            expect(content?.equals(Buffer.from(value, 'utf8'))).toBe(true);
            if (!LONE_SURROGATE.test(value)) expect(content?.toString('utf8')).toBe(value);
          } else {
            expect(skipped).toContainEqual({ key, output: 'keys', reason: 'unsafe-file-name' });
          }
        }
        expect(files.length + skipped.length).toBe(snapshot.size);
      }),
      { numRuns: 1000 },
    );
  });

  it('a safe name always stays one component directly inside the directory', () => {
    fc.assert(
      fc.property(anyString, (key) => {
        if (!isSafeFileName(key)) return;
        const path = `keys/${key}`;
        expect(posix.normalize(path)).toBe(path);
        expect(posix.dirname(path)).toBe('keys');
        expect(Buffer.byteLength(key, 'utf8')).toBeLessThanOrEqual(255);
        expect(key.startsWith('..')).toBe(false);
      }),
      { numRuns: 5000 },
    );
  });

  it.each([
    ['SECRET_KEY', 'SECRET_KEY', true],
    ['db.password', 'db.password', true],
    ['.hidden', '.hidden', true],
    ['a b', 'a b', true],
    ['255 ASCII bytes', 'K'.repeat(255), true],
    ['256 ASCII bytes', 'K'.repeat(256), false],
    ['127 × é (254 bytes)', 'é'.repeat(127), true],
    ['128 × é (256 bytes)', 'é'.repeat(128), false],
    ['empty', '', false],
    ['.', '.', false],
    ['..', '..', false],
    ['..data', '..data', false],
    ['...', '...', false],
    ['a/b', 'a/b', false],
    ['/', '/', false],
    ['NUL', 'a\0', false],
    ['lone surrogate', 'a\uD800', false],
    ['emoji', '😀', true],
  ])('isSafeFileName(%s) is %s', (_name, key, safe) => {
    expect(isSafeFileName(key)).toBe(safe);
  });

  it('strips trailing slashes from the directory', () => {
    expect(renderKeyFiles(new Map([['A', 'v']]), 'keys//').files.map((file) => file.path)).toEqual(['keys/A']);
  });
});

describe('isEnvName', () => {
  it.each([
    ['A', true],
    ['_', true],
    ['_1', true],
    ['abc_DEF_123', true],
    ['1A', false],
    ['', false],
    ['A-B', false],
    ['A.B', false],
    ['A B', false],
    ['É', false],
    ['A\n', false],
  ])('isEnvName(%j) is %s', (key, expected) => {
    expect(isEnvName(key)).toBe(expected);
  });
});
