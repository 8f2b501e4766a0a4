/** `npm run docs`: regenerates docs/configuration.md and docs/errors.md from the code's tables. */
import { writeFileSync } from 'node:fs';
import { renderConfigurationReference, renderErrorCatalogue } from './reference.js';

writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigurationReference());
writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorCatalogue());
console.log('wrote docs/configuration.md and docs/errors.md');
