/**
 * `infisical-sidecar compose-override [FILE] [--services a,b] [--no-subpath]`: reads the Compose model
 * (the JSON of `docker compose config --format json` on stdin, or a compose file), prints the override
 * on stdout and the warnings on stderr. Loaded only when the subcommand runs.
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { EXIT_CODES } from '../errors.js';
import { ComposeModelError, ComposeOverrideRefused, generateOverride } from './index.js';

export const COMPOSE_OVERRIDE_USAGE = `Usage: infisical-sidecar compose-override [FILE] [--services web,worker,...] [--no-subpath] [--cache] [--no-role-sync]

Prints a compose.override.yml fitted to a GlitchTip Compose model: the JSON of
  docker compose -f docker-compose.yml config --format json
on stdin, or a compose FILE. Name the base file with -f: a plain \`docker compose config\` merges an
existing compose.override.yml in, which is refused. Warnings (service and variable names, never values)
go to stderr.

  --services a,b  the GlitchTip services (default: those running a glitchtip/glitchtip image)
  --no-subpath    for Docker Engine < 26: postgres mounts the whole secrets volume read-only
                  (default: only keys/, through a volume subpath)
  --cache         turn on the last-known-good cache: the volume sidecar-cache, on the sidecar only,
                  holds an encrypted copy of the last sync, so the stack starts while Infisical is
                  unreachable; it is a copy of the secrets at rest (docs/production.md)
  --no-role-sync  do not let the sidecar change the PostgreSQL role's password when POSTGRES_PASSWORD
                  rotates (default: it does, docs/postgres-role-sync.md); rotate it by hand instead`;

export interface ComposeOverrideIo {
  /** Prints one block of text; a newline is added after it. */
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Default: all of process.stdin. */
  readonly readStdin?: () => Promise<string>;
  /** Default: process.stdin.isTTY (nothing piped in: print the usage instead of waiting). */
  readonly stdinIsTTY?: boolean;
}

export async function runComposeOverride(args: readonly string[], io: ComposeOverrideIo): Promise<number> {
  const parsed = parseArgs(args);
  if ('help' in parsed) {
    io.stdout(COMPOSE_OVERRIDE_USAGE);
    return EXIT_CODES.ok;
  }
  if ('problem' in parsed) {
    io.stderr(`infisical-sidecar compose-override: ${parsed.problem}\n\n${COMPOSE_OVERRIDE_USAGE}`);
    return EXIT_CODES.usage;
  }
  const fromStdin = parsed.file === undefined || parsed.file === '-';
  if (fromStdin && (io.stdinIsTTY ?? process.stdin.isTTY === true)) {
    io.stderr(`infisical-sidecar compose-override: nothing on stdin\n\n${COMPOSE_OVERRIDE_USAGE}`);
    return EXIT_CODES.usage;
  }
  const source = fromStdin ? 'stdin' : parsed.file!;
  try {
    const text = fromStdin ? await (io.readStdin ?? readStdin)() : await readFile(parsed.file!, 'utf8');
    // JSON is YAML: one parser for both forms. Compose's own tags (!reset, !override) parse as plain values.
    const model: unknown = parse(text, { merge: true, logLevel: 'error' });
    const { text: override, warnings } = generateOverride(model, { services: parsed.services, subpath: parsed.subpath, cache: parsed.cache, roleSync: parsed.roleSync });
    for (const warning of warnings) io.stderr(`warning: ${warning}`);
    io.stdout(override.replace(/\n$/, ''));
    return EXIT_CODES.ok;
  } catch (error) {
    if (error instanceof ComposeOverrideRefused || error instanceof ComposeModelError) {
      io.stderr(`infisical-sidecar compose-override: ${source}: ${error.message}`);
      return EXIT_CODES.usage;
    }
    // A YAML syntax error quotes the offending line, which may hold a value: name the position only.
    const where = error instanceof Error && 'linePos' in error && Array.isArray(error.linePos) ? ` at line ${error.linePos[0]?.line}` : '';
    const code = error instanceof Error && 'code' in error ? ` (${String(error.code)})` : '';
    io.stderr(`infisical-sidecar compose-override: cannot read ${source}${where}${code}`);
    return EXIT_CODES.usage;
  }
}

type ParsedArgs = { readonly help: true } | { readonly problem: string } | { readonly file: string | undefined; readonly services: string[] | undefined; readonly subpath: boolean; readonly cache: boolean; readonly roleSync: boolean };

function parseArgs(args: readonly string[]): ParsedArgs {
  let file: string | undefined;
  let services: string[] | undefined;
  let subpath = true;
  let cache = false;
  let roleSync = true;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-h' || arg === '--help') return { help: true };
    if (arg === '--no-subpath') subpath = false;
    else if (arg === '--cache') cache = true;
    else if (arg === '--no-role-sync') roleSync = false;
    else if (arg === '--services' || arg.startsWith('--services=')) {
      const list = arg === '--services' ? args[++i] : arg.slice('--services='.length);
      services = (list ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      if (services.length === 0) return { problem: '--services needs a comma-separated list of service names' };
    } else if (arg.startsWith('-') && arg !== '-') return { problem: `unknown option: ${arg}` };
    else if (file === undefined) file = arg;
    else return { problem: `unexpected argument: ${arg}` };
  }
  return { file, services, subpath, cache, roleSync };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
