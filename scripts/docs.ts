/** `npm run docs`: regenerates docs/configuration.md, docs/errors.md and docs/lint-rules.md from the code's tables. */
import { writeFileSync } from 'node:fs';
import { renderConfigurationReference, renderErrorCatalogue, renderLintRules } from './reference.js';

writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigurationReference());
writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorCatalogue());
writeFileSync(new URL('../docs/lint-rules.md', import.meta.url), renderLintRules());
console.log('wrote docs/configuration.md, docs/errors.md and docs/lint-rules.md');
