/**
 * Renders the configuration reference, the error catalogue and the lint rules as Markdown from the code's own
 * tables, so the docs cannot drift: `npm run docs` (scripts/docs.ts) writes them, test/docs.test.ts
 * fails when they differ. Documentation only: nothing in src/ imports this.
 */
import { VARIABLES, type VariableSpec } from '../src/config/schema.js';
import {
  ERROR_CATALOGUE,
  EXIT_CODES,
  EXIT_MEANINGS,
  HEALTHCHECK_EXIT_CODES,
  STATUS_EXIT_CODES,
  STATUS_EXIT_MEANINGS,
} from '../src/errors.js';
import { RULES, type RuleSpec } from '../src/lint/index.js';

const GROUP_TITLES: Record<VariableSpec['group'], string> = {
  infisical: 'Infisical access',
  sidecar: 'Refresh, health and behaviour',
  output: 'Output files',
  reload: 'Rotation: reload actions, webhook push, watching',
  postgres: 'PostgreSQL role sync (rotating the database password)',
  health: 'Health server',
};

/** A table's entries with its own key type, to look each name up in its meanings (Object.entries widens keys to string). */
function entries<K extends string>(table: Readonly<Record<K, number>>): [K, number][] {
  return (Object.keys(table) as K[]).map((key) => [key, table[key]]);
}

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
    'Variables marked *file* can instead be given as `<NAME>_FILE`, the path of a file holding the value (Compose `secrets:`); surrounding whitespace such as the trailing newline is dropped, and an empty file is an error.',
    'All problems are reported at once, each naming its variable and the fix, and the process exits with code 78.',
    'An unknown `SIDECAR_*` variable is an error too (typos would otherwise be silently ignored).',
    '',
  ];
  const groups = [...new Set(Object.values(VARIABLES).map((spec) => spec.group))];
  for (const group of groups) {
    lines.push(`## ${GROUP_TITLES[group]}`, '', '| Variable | Default | Meaning |', '| --- | --- | --- |');
    for (const [name, spec] of Object.entries<VariableSpec>(VARIABLES)) {
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
    ...entries(EXIT_CODES).map(([name, code]) => `| ${code} | ${name} | ${cell(EXIT_MEANINGS[name])} |`),
    '',
    'Of `status` (reads a running sidecar\'s `/healthz`):',
    '',
    '| Exit code | When |',
    '| --- | --- |',
    ...entries(STATUS_EXIT_CODES).map(([name, code]) => `| ${code} | ${cell(STATUS_EXIT_MEANINGS[name])} |`),
    '',
    `Of \`healthcheck\` (the image's Docker HEALTHCHECK): ${HEALTHCHECK_EXIT_CODES.healthy} when \`http://127.0.0.1:$SIDECAR_HEALTH_PORT/healthz\` answers 200 within 2 s, ${HEALTHCHECK_EXIT_CODES.unhealthy} otherwise.`,
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

const SCOPE_TITLES: Record<RuleSpec['scope'], string> = {
  any: 'Always on',
  glitchtip: 'SIDECAR_CONSUMER=glitchtip',
};

export function renderLintRules(): string {
  const lines = [
    '# Lint rules',
    '',
    '<!-- Generated from src/lint/rules.ts by `npm run docs`; a test fails when this file is out of date. -->',
    '',
    'After each fetch the sidecar checks every value (derived ones included) against what its consumer will make of it. A finding names the key, the rule and the part of the value (e.g. "password part of the URL"), never the value.',
    'Severity `breaks`: the consumer will fail or read another value; `advice`: it works, but is fragile or weak.',
    '`check` and the logs show full findings, `status` and `/healthz` only the keys and severities (`warnings`), `/metrics` counts them by severity.',
    'SIDECAR_LINT=`warn` (default) reports them; `error` also fails the pass on a `breaks` finding, keeping the last good files; `off` skips the checks.',
    'The URL and `$` rules are held to the real django-environ by test/system/lint-oracle.test.ts.',
    '',
  ];
  for (const scope of Object.keys(SCOPE_TITLES) as RuleSpec['scope'][]) {
    lines.push(`## ${SCOPE_TITLES[scope]}`, '', '| Rule | Severity | What goes wrong | Fix |', '| --- | --- | --- | --- |');
    for (const [id, rule] of Object.entries<RuleSpec>(RULES)) {
      if (rule.scope === scope) lines.push(`| \`${id}\` | ${rule.severity} | ${cell(rule.explanation)} | ${cell(rule.fix)} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
