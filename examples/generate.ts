/**
 * Writes every compose file the project ships from the generator (`infisical-sidecar compose-override`,
 * src/compose/): the repository's compose.override.yml from the seed deployment's layout, and each
 * examples/<layout>/ (a copy of the layout's base file from test/fixtures/compose/ and the override
 * generated from it). Change the generator or a fixture, never these files by hand.
 *
 *   npm run compose:generate             # rewrite what changed
 *   npm run compose:generate -- --check  # exit 1 and name the stale files (test/examples.test.ts does the same)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { generateOverride } from '../src/compose/index.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface Layout {
  /** Name of the fixture (test/fixtures/compose/<name>.yml) and, for examples, of the folder. */
  readonly name: string;
  /** Where the generated override goes, relative to the repository. */
  readonly override: string;
  /** Where a copy of the base file goes, next to its override (examples only). */
  readonly baseCopy?: string;
}

export const LAYOUTS: readonly Layout[] = [
  { name: 'seed', override: 'compose.override.yml' },
  { name: 'glitchtip-5', override: 'examples/glitchtip-5/compose.override.yml', baseCopy: 'examples/glitchtip-5/docker-compose.yml' },
  { name: 'glitchtip-6', override: 'examples/glitchtip-6/compose.override.yml', baseCopy: 'examples/glitchtip-6/docker-compose.yml' },
  { name: 'glitchtip-6-all-in-one', override: 'examples/glitchtip-6-all-in-one/compose.override.yml', baseCopy: 'examples/glitchtip-6-all-in-one/docker-compose.yml' },
];

export const fixturePath = (layout: Layout) => path.join(ROOT, 'test/fixtures/compose', `${layout.name}.yml`);

/** Every shipped file, by path relative to the repository, with the content the generator gives it. */
export function shippedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const layout of LAYOUTS) {
    const base = readFileSync(fixturePath(layout), 'utf8');
    files.set(layout.override, generateOverride(parse(base, { merge: true }), { subpath: true }).text);
    if (layout.baseCopy) files.set(layout.baseCopy, base);
  }
  return files;
}

/** The shipped files whose content differs from what the generator gives. */
export function staleFiles(): string[] {
  const stale: string[] = [];
  for (const [file, wanted] of shippedFiles()) {
    let current: string | undefined;
    try {
      current = readFileSync(path.join(ROOT, file), 'utf8');
    } catch {
      current = undefined; // missing: stale
    }
    if (current !== wanted) stale.push(file);
  }
  return stale;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) {
    const stale = staleFiles();
    if (stale.length > 0) {
      console.error(`out of date with the generator: ${stale.join(', ')}\nrun: npm run compose:generate`);
      process.exit(1);
    }
  } else {
    const stale = new Set(staleFiles());
    for (const [file, content] of shippedFiles()) if (stale.has(file)) writeFileSync(path.join(ROOT, file), content);
    console.log(stale.size > 0 ? `wrote ${[...stale].join(', ')}` : 'compose files are up to date');
  }
}
