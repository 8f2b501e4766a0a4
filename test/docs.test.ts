import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigurationReference, renderErrorCatalogue } from '../scripts/reference.js';
import { VARIABLES } from '../src/config/schema.js';
import { ERROR_CATALOGUE } from '../src/errors.js';

const read = (file: string) => readFileSync(new URL(`../docs/${file}`, import.meta.url), 'utf8');

describe('generated docs stay true to the code', () => {
  it('docs/configuration.md matches the variable table (run `npm run docs` after changing it)', () => {
    expect(read('configuration.md')).toBe(renderConfigurationReference());
    for (const name of Object.keys(VARIABLES)) expect(read('configuration.md')).toContain(name);
  });

  it('docs/errors.md matches the error catalogue (run `npm run docs` after changing it)', () => {
    expect(read('errors.md')).toBe(renderErrorCatalogue());
    for (const code of Object.keys(ERROR_CATALOGUE)) expect(read('errors.md')).toContain(`\`${code}\``);
  });

  it('every error code the source raises is in the catalogue', () => {
    const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
    const used = execFileSync('grep', ['-rhoE', "'SIDECAR_[A-Z_]+'", 'src'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((quoted) => quoted.slice(1, -1))
      .filter((code) => !code.startsWith('SIDECAR_DERIVE') && !(code in VARIABLES));
    for (const code of new Set(used)) expect(Object.keys(ERROR_CATALOGUE), code).toContain(code);
  });
});
