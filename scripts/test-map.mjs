#!/usr/bin/env node
/**
 * Which test became which between two commits: `vitest list` on both (every tier's vitest config),
 * each old test matched to a new one — the same file and name, the same name in another file, or an
 * entry of a renames file (old file, old name, new file, new name, tab-separated; new "-" for a test
 * deleted on purpose). Prints a Markdown table of what changed and the count of what did not, and
 * exits 1 when an old test has no match: a behaviour that lost its test.
 *
 *   node scripts/test-map.mjs OLD_REV [NEW_REV] [--renames FILE...]
 *
 * NEW_REV defaults to the working tree. Each revision is listed in a temporary worktree that borrows
 * this checkout's node_modules.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const args = process.argv.slice(2);
const renameFiles = [];
const revs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--renames') while (args[i + 1] && !args[i + 1].startsWith('--')) renameFiles.push(args[++i]);
  else revs.push(args[i]);
}
if (revs.length < 1) {
  console.error('usage: node scripts/test-map.mjs OLD_REV [NEW_REV] [--renames FILE...]');
  process.exit(2);
}

/** Every test `vitest list` finds in `dir`, under each vitest config there, as "file\tname". */
function listTests(dir) {
  const configs = ['vitest.config.ts', 'vitest.system.config.ts'].filter((config) => existsSync(path.join(dir, config)));
  const tests = [];
  for (const config of configs) {
    const out = path.join(mkdtempSync(path.join(tmpdir(), 'test-map-')), 'list.json');
    execFileSync(path.join(repo, 'node_modules/.bin/vitest'), ['list', '--config', config, `--json=${out}`], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    for (const { file, name } of JSON.parse(readFileSync(out, 'utf8'))) tests.push({ file: path.relative(dir, file), name });
    rmSync(path.dirname(out), { recursive: true, force: true });
  }
  return tests;
}

function testsAt(rev) {
  if (rev === undefined) return listTests(repo);
  const dir = mkdtempSync(path.join(tmpdir(), 'test-map-tree-'));
  execFileSync('git', ['worktree', 'add', '--detach', dir, rev], { cwd: repo, stdio: 'ignore' });
  try {
    symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
    return listTests(dir);
  } finally {
    execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: repo, stdio: 'ignore' });
  }
}

const key = (file, name) => `${file}\t${name}`;
const before = testsAt(revs[0]);
const after = testsAt(revs[1]);
const afterKeys = new Set(after.map((t) => key(t.file, t.name)));
const afterByName = new Map();
for (const t of after) afterByName.set(t.name, [...(afterByName.get(t.name) ?? []), t.file]);
const renames = new Map();
for (const file of renameFiles) {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [oldFile, oldName, newFile, newName] = line.split('\t');
    if (oldFile && oldName && newFile) renames.set(key(oldFile, oldName), { file: newFile, name: newName ?? '-' });
  }
}

const cell = (text) => text.replaceAll('|', '\\|');
const rows = [];
let same = 0;
let lost = 0;
for (const t of before) {
  const renamed = renames.get(key(t.file, t.name));
  if (afterKeys.has(key(t.file, t.name)) && !renamed) {
    same++;
    continue;
  }
  let to;
  if (renamed && renamed.file === '-') to = 'deleted on purpose (see the renames file)';
  else if (renamed && afterKeys.has(key(renamed.file, renamed.name))) to = `${renamed.file} › ${renamed.name}`;
  else if (renamed) to = `MISSING: ${renamed.file} › ${renamed.name} is not a test`;
  else if (afterByName.get(t.name)?.length === 1) to = `${afterByName.get(t.name)[0]} › (same name)`;
  else to = 'MISSING: no test of that name';
  if (to.startsWith('MISSING')) lost++;
  rows.push(`| ${cell(`${t.file} › ${t.name}`)} | ${cell(to)} |`);
}
const beforeKeys = new Set(before.map((t) => key(t.file, t.name)));
const mappedTo = new Set([...renames.values()].map((r) => key(r.file, r.name)));
const added = after.filter((t) => !beforeKeys.has(key(t.file, t.name)) && !mappedTo.has(key(t.file, t.name)) && !before.some((b) => b.name === t.name));

console.log(`${before.length} tests before, ${after.length} after: ${same} unchanged, ${rows.length} moved, renamed or merged, ${added.length} new, ${lost} without a match.\n`);
if (rows.length > 0) console.log(['| before | after |', '| --- | --- |', ...rows].join('\n'));
if (added.length > 0) console.log(['\nNew tests:', ...added.map((t) => `- ${t.file} › ${t.name}`)].join('\n'));
process.exit(lost > 0 ? 1 : 0);
