/**
 * `compose-override`: a compose.override.yml fitted to the operator's own Compose model. Pure: a parsed
 * model in, the override's text and the warnings out (service and variable names, never a value).
 */
import { normalizeModel } from './model.js';
import { planOverride, type PlanOptions } from './plan.js';
import { renderOverride, type RenderOptions } from './render.js';

export { ComposeModelError } from './model.js';
export { ComposeOverrideRefused } from './plan.js';

export interface GenerateOptions extends PlanOptions, RenderOptions {}

export interface GeneratedOverride {
  readonly text: string;
  readonly warnings: readonly string[];
}

/**
 * @param model what `docker compose -f docker-compose.yml config --format json` prints, or a compose file,
 *   parsed (anchors and merge keys resolved)
 * @throws ComposeModelError when it is not a Compose model; ComposeOverrideRefused when it already
 *   contains the override or has no GlitchTip service
 */
export function generateOverride(model: unknown, options: GenerateOptions): GeneratedOverride {
  const plan = planOverride(normalizeModel(model), options);
  return { text: renderOverride(plan, options), warnings: plan.warnings };
}
