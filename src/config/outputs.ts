/**
 * The output formats and their default names, defined once: config validates `SIDECAR_OUTPUTS` and
 * the config file against them, and the render stage (a later stage) imports them from here.
 */

/** The four file dialects the sidecar writes, in the order they are written by default; `docs/output-formats.md` specifies each byte. */
export const OUTPUT_FORMATS = ['env', 'dotenv', 'json', 'files'] as const;

export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Default name of each output in the output directory; for `files`, the sub-directory holding one file per key. */
export const DEFAULT_OUTPUT_PATHS: Readonly<Record<OutputFormat, string>> = Object.freeze({
  env: 'secrets.env',
  dotenv: 'secrets.dotenv',
  json: 'secrets.json',
  files: 'keys',
});

/** One output to write. */
export interface OutputSpec {
  readonly format: OutputFormat;
  /**
   * Path relative to the output directory, with `/` separators ("secrets.env"). For `files` it names
   * the sub-directory that holds one file per key ("keys"). Config validates it; render uses it as is.
   */
  readonly path: string;
}

/** Every format under its default name: what is written when nothing else is configured. */
export const DEFAULT_OUTPUTS: readonly OutputSpec[] = Object.freeze(OUTPUT_FORMATS.map((format) => Object.freeze({ format, path: DEFAULT_OUTPUT_PATHS[format] })));
