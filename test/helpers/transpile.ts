/**
 * Transpiles one `src/` module and everything it imports relatively into plain ESM JavaScript in a
 * directory, so a child process can load the *real* code with `node` alone: ~50 ms to start instead
 * of ~400 ms through a TypeScript loader, which matters when a test starts a hundred of them.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Returns the path of the transpiled entry module (e.g. `output/atomic-dir.ts` → `<outDir>/output/atomic-dir.js`). */
export function transpileFromSrc(entry: string, outDir: string): string {
  writeFileSync(path.join(outDir, 'package.json'), '{ "type": "module" }\n');
  const done = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const relative = pending.pop()!;
    if (done.has(relative)) continue;
    done.add(relative);
    const source = readFileSync(path.join(SRC, relative), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false, isolatedModules: true },
      fileName: relative,
    });
    const target = path.join(outDir, relative.replace(/\.ts$/, '.js'));
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, outputText);
    for (const [, specifier] of outputText.matchAll(/from\s+['"](\.{1,2}\/[^'"]+)\.js['"]/g)) {
      pending.push(path.posix.normalize(path.posix.join(path.posix.dirname(relative), `${specifier}.ts`)));
    }
  }
  return path.join(outDir, entry.replace(/\.ts$/, '.js'));
}
