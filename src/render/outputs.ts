/** Renders a list of outputs from one snapshot: the render stage's main entry point. */

import { RenderError } from '../errors.js';
import { renderDotenv } from './dotenv.js';
import { renderKeyFiles } from './files.js';
import { renderJson } from './json.js';
import { renderShellEnv } from './shell.js';
import type { OutputSpec, RenderedFile, RenderResult, SkippedKey, Snapshot } from './types.js';

/** The outputs written when none are configured: secrets.env, secrets.dotenv, secrets.json, keys/. */
export { DEFAULT_OUTPUTS } from '../config/outputs.js';

/**
 * Renders every output from one snapshot. Pure and deterministic: keys are taken in UTF-16
 * code-unit order, and the same snapshot and outputs always give identical bytes. Files come back
 * in `outputs` order (a `files` output contributes one file per kept key); `skipped` lists the keys
 * each output left out, for the caller to log by name.
 */
export function renderOutputs(snapshot: Snapshot, outputs: readonly OutputSpec[]): RenderResult {
  const files: RenderedFile[] = [];
  const skipped: SkippedKey[] = [];
  for (const spec of outputs) {
    const rendered = renderOne(snapshot, spec);
    // Loops, not push(...spread): a snapshot with many keys would exceed the argument limit.
    for (const file of rendered.files) files.push(file);
    for (const key of rendered.skipped) skipped.push(key);
  }
  return { files, skipped };
}

function renderOne(snapshot: Snapshot, spec: OutputSpec): RenderResult {
  switch (spec.format) {
    case 'env':
      return asSingleFile(spec.path, renderShellEnv(snapshot, spec.path));
    case 'dotenv':
      return asSingleFile(spec.path, renderDotenv(snapshot, spec.path));
    case 'json':
      return asSingleFile(spec.path, renderJson(snapshot));
    case 'files':
      return renderKeyFiles(snapshot, spec.path);
    default:
      // Unreachable for typed callers; config validates formats, this guards plain-JS misuse.
      throw new RenderError('SIDECAR_UNEXPECTED', `unknown output format ${JSON.stringify((spec as { format: unknown }).format)}`);
  }
}

function asSingleFile(path: string, rendered: { content: Buffer; skipped: SkippedKey[] }): RenderResult {
  return { files: [{ path, content: rendered.content }], skipped: rendered.skipped };
}
