/**
 * Renders the configuration reference and the error catalogue as Markdown from the code's own
 * tables, so the docs cannot drift: `npm run docs` writes them, a test fails when they differ.
 */
import { ERROR_CATALOGUE, EXIT_CODES, type ExitCodeName } from '../errors.js';
import { STATUS_EXIT } from '../status.js';
import { VARIABLES, type VariableSpec } from './schema.js';

const GROUP_TITLES: Record<VariableSpec['group'], string> = {
  infisical: 'Infisical access',
  sidecar: 'Refresh, health and behaviour',
  output: 'Output files',
  reload: 'Rotation: reload actions, webhook push, watching',
  health: 'Health server',
};

/** When each exit code happens; typed by the code's names, so a new exit code without a line here does not compile. */
const EXIT_MEANINGS: Record<ExitCodeName, string> = {
  ok: 'Success: `once` wrote a complete set, `check` fetched everything, `run` stopped on SIGTERM. (`run` never exits on a failed sync: it keeps the last good files and retries.)',
  unexpected: 'A bug or an unforeseen condition (`SIDECAR_UNEXPECTED`).',
  usage: 'Unknown subcommand or argument.',
  missingKeys: 'A required key, or a key a template needs, is missing; nothing was written.',
  fetch: 'Infisical answered 404 or 400/422; for `check` (a single attempt) also unreachable, 5xx or 429. `once` retries those until its deadline (75).',
  write: 'The output directory is missing, read-only or full.',
  deadline: '`once` kept retrying a temporary failure until SIDECAR_ONCE_DEADLINE; the last error is in the message.',
  auth: 'Infisical refused the login, or denied access after a fresh login.',
  config: 'A setting is missing or malformed (printed to stderr, one line per problem).',
};

const STATUS_MEANINGS: Record<keyof typeof STATUS_EXIT, string> = {
  healthy: 'The sidecar answered `/healthz` with 200 (status `ok` or `degraded`).',
  unhealthy: 'The sidecar answered 503 (status `starting`, `failing`, `stale` or `missing_keys`).',
  unreachable: 'Nothing answered at the URL within 3 s, or what answered is not a sidecar\'s `/healthz`.',
  usage: 'Bad arguments.',
};

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderConfigurationReference(): string {
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs`; a test fails when this file is out of date. -->',
    '',
    'Every setting is an environment variable. Durations take units (`500ms`, `30s`, `5m`, `1h`, `1h30m`); a bare number is refused.',
    'Variables marked *file* can instead be given as `<NAME>_FILE`, the path of a file holding the value (Compose `secrets:`); one trailing newline is dropped.',
    'All problems are reported at once, each naming its variable and the fix, and the process exits with code 78.',
    'An unknown `SIDECAR_*` variable is an error too (typos would otherwise be silently ignored).',
    '',
  ];
  const groups = [...new Set(Object.values(VARIABLES).map((spec) => spec.group))];
  for (const group of groups) {
    lines.push(`## ${GROUP_TITLES[group]}`, '', '| Variable | Default | Meaning |', '| --- | --- | --- |');
    for (const [name, spec] of Object.entries(VARIABLES) as [string, VariableSpec][]) {
      if (spec.group !== group) continue;
      const label = name.endsWith('_') ? `\`${name}<NAME>\`` : `\`${name}\``;
      const flags = [spec.required ? '**required**' : '', spec.fileForm ? '*file*' : '', spec.secret ? '*secret*' : ''].filter(Boolean).join(', ');
      const defaultText = spec.default === undefined ? '—' : spec.default === '' ? '(empty)' : `\`${spec.default}\``;
      const example = spec.example ? ` Example: \`${spec.example}\`.` : '';
      lines.push(`| ${label}${flags ? ` (${flags})` : ''} | ${defaultText} | ${cell(spec.doc)}${cell(example)} |`);
    }
    lines.push('');
  }
  lines.push(
    '## Config file (`SIDECAR_CONFIG_FILE`)',
    '',
    'Optional JSON; unknown keys are errors. `outputs` replaces `SIDECAR_OUTPUTS` (each `path` is a plain file name in the output directory; for `files` it names the sub-directory). `derived` adds keys rendered from templates; `SIDECAR_DERIVE_<NAME>` variables win over the file.',
    '',
    '```json',
    '{',
    '  "outputs": [',
    '    { "format": "env", "path": "glitchtip.env" },',
    '    { "format": "files", "path": "keys" }',
    '  ],',
    '  "derived": { "DATABASE_URL": "postgres://glitchtip_maintainer:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip" }',
    '}',
    '```',
    '',
  );
  return lines.join('\n');
}

export function renderErrorCatalogue(): string {
  const lines = [
    '# Errors and exit codes',
    '',
    '<!-- Generated from src/errors.ts by `npm run docs`; a test fails when this file is out of date. -->',
    '',
    'Every failure has a stable code. It appears in logs (`code`), in `/healthz` (`lastError.code`, per folder too) and, for `once` and `check`, as the process exit code below.',
    '',
    '## Exit codes',
    '',
    'Of `run`, `once` and `check`:',
    '',
    '| Exit code | Name | When |',
    '| --- | --- | --- |',
    ...(Object.entries(EXIT_CODES) as [ExitCodeName, number][]).map(([name, code]) => `| ${code} | ${name} | ${cell(EXIT_MEANINGS[name])} |`),
    '',
    'Of `status` (reads a running sidecar\'s `/healthz`):',
    '',
    '| Exit code | When |',
    '| --- | --- |',
    ...(Object.entries(STATUS_EXIT) as [keyof typeof STATUS_EXIT, number][]).map(([name, code]) => `| ${code} | ${cell(STATUS_MEANINGS[name])} |`),
    '',
    'Of `healthcheck` (the image\'s Docker HEALTHCHECK): 0 when `http://127.0.0.1:$SIDECAR_HEALTH_PORT/healthz` answers 200 within 2 s, 1 otherwise.',
    '',
    '## Error codes',
    '',
    '| Code | Exit | Meaning | How to fix |',
    '| --- | --- | --- | --- |',
    ...Object.entries(ERROR_CATALOGUE).map(([code, entry]) => `| \`${code}\` | ${EXIT_CODES[entry.exit]} | ${cell(entry.meaning)} | ${cell(entry.hint)} |`),
    '',
  ];
  return lines.join('\n');
}
