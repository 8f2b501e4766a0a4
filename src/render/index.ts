/**
 * The render stage: pure functions from one merged snapshot of secrets to file contents.
 * No I/O here; `src/output/` writes what these return. Formats are specified in docs/output-formats.md.
 */

export type {
  OutputFormat,
  OutputSpec,
  RenderedContent,
  RenderedFile,
  RenderResult,
  SkippedKey,
  SkipReason,
  Snapshot,
} from './types.js';
export { DEFAULT_OUTPUTS, renderOutputs } from './outputs.js';
export { isEnvName, isSafeFileName, compareCodeUnits } from './keys.js';
export { renderShellEnv, shellSingleQuote } from './shell.js';
export { renderDotenv, parseDotenv, quoteDotenvValue, needsDoubleQuotes, wouldBeInterpolated, dotenvSkipReason } from './dotenv.js';
export { renderJson } from './json.js';
export { renderKeyFiles, type RenderedKeyFiles } from './files.js';
export { parseTemplate, renderTemplate, applyDerived, type Template } from './template.js';
export { percentEncode, FILTERS, FILTER_NAMES, type Filter } from './filters.js';
