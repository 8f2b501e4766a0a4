/**
 * Shapes shared by every render function. The render stage is pure: it turns one merged snapshot of
 * secrets into file contents and never touches the file system or the network.
 */

/** Merged secrets: key → value. Values may hold any Unicode, NUL, newlines, and be megabytes long. */
export type Snapshot = ReadonlyMap<string, string>;

/** The formats and their default names are defined once, by config (an earlier stage). */
export type { OutputFormat, OutputSpec } from '../config/outputs.js';

/** One file to write: a relative posix path ("secrets.env", "keys/SECRET_KEY") and its exact bytes. */
export interface RenderedFile {
  path: string;
  content: Buffer;
}

/**
 * Why a key was left out of one output (it is still in the others). docs/output-formats.md has the
 * exact rules.
 * - `not-an-env-name`: env/dotenv only; the key does not match `^[A-Za-z_][A-Za-z0-9_]*$`.
 * - `contains-nul`: env/dotenv only; a NUL byte cannot be held by an environment variable.
 * - `dotenv-interpolation`: dotenv only; a dotenv reader would substitute variables into the value
 *   (it contains `${`, or it contains `$` and needs double quotes).
 * - `dotenv-trailing-backslash`: dotenv only; the value ends with `\`, which python-dotenv cannot
 *   read back (its quoted-value regex runs on to the next quote and drops the following keys).
 * - `unsafe-file-name`: files only; the key cannot be used as a single file name.
 * - `shell-special`: env only; a name the shell that sources the file owns (bash's read-only `UID`,
 *   `EUID`, `PPID`, `SHELLOPTS`, `BASHOPTS`, `BASH_VERSINFO`; `OPTIND`, which dash insists is a
 *   number): assigning it makes a POSIX-mode bash or dash stop, so the app would never start.
 */
export type SkipReason =
  | 'not-an-env-name'
  | 'contains-nul'
  | 'dotenv-interpolation'
  | 'dotenv-trailing-backslash'
  | 'unsafe-file-name'
  | 'shell-special';

/** A key left out of one output. The caller logs `key`, `output` and `reason`, never the value. */
export interface SkippedKey {
  key: string;
  /** The `OutputSpec.path` of the output that left the key out. */
  output: string;
  reason: SkipReason;
}

/** Everything `renderOutputs` produced: files in output order, then keys that some output left out. */
export interface RenderResult {
  files: RenderedFile[];
  skipped: SkippedKey[];
}

/** What a single-file renderer returns. */
export interface RenderedContent {
  content: Buffer;
  skipped: SkippedKey[];
}
