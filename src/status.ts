/**
 * `infisical-sidecar status [--url URL] [--json]`: reads a running sidecar's `/healthz` and prints
 * it for a person: overall status, revision, freshness, next refresh, one row per folder, and the
 * last error with its hint. Colours only when stdout is a terminal and NO_COLOR is unset.
 *
 * Exit codes (STATUS_EXIT_CODES in errors.ts, for scripts and `watch`): healthy (HTTP 200),
 * unhealthy (503 with a report), unreachable (no answer, or not a sidecar's /healthz), usage.
 *
 * Everything printed comes from /healthz, which never carries a value; text that came from a
 * server (error messages) has its control characters escaped so it cannot drive the terminal.
 */
import type { Env } from './config/load.js';
import { STATUS_EXIT_CODES } from './errors.js';
import type { FolderView, HealthReport, HealthStatus } from './health/state.js';
import { colorEnabled, formatDuration, printable, trimEndOf } from './text.js';

export interface StatusIo {
  readonly env: Env;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Whether stdout is a terminal (colours). */
  readonly isTTY: boolean;
  readonly now?: () => number;
  readonly timeoutMs?: number;
}

export interface StatusArgs {
  readonly url: string;
  readonly json: boolean;
}

const STATUS_USAGE = 'usage: infisical-sidecar status [--url http://127.0.0.1:8080] [--json]';

export async function runStatus(argv: readonly string[], io: StatusIo): Promise<number> {
  const args = parseStatusArgs(argv, io.env);
  if (typeof args === 'string') {
    io.stderr(`infisical-sidecar status: ${args}\n${STATUS_USAGE}`);
    return STATUS_EXIT_CODES.usage;
  }
  const answer = await fetchHealth(args.url, io.timeoutMs ?? 3_000);
  if (!answer.ok) {
    io.stderr(
      `infisical-sidecar status: ${args.url} is unreachable: ${printable(answer.reason)}\n` +
        'hint: is the sidecar running, and is --url its health address (SIDECAR_HEALTH_HOST:SIDECAR_HEALTH_PORT)? Inside its container: infisical-sidecar status',
    );
    return STATUS_EXIT_CODES.unreachable;
  }
  const healthy = answer.httpStatus === 200 && answer.report.healthy;
  if (args.json) io.stdout(JSON.stringify(answer.report, null, 2));
  else io.stdout(formatStatus(answer.report, { url: args.url, httpStatus: answer.httpStatus, color: colorEnabled(io.isTTY, io.env), now: (io.now ?? Date.now)() }));
  return healthy ? STATUS_EXIT_CODES.healthy : STATUS_EXIT_CODES.unhealthy;
}

/** `--url` takes the base address or the full /healthz URL; the default is this container's port. */
export function parseStatusArgs(argv: readonly string[], env: Env): StatusArgs | string {
  let url: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') json = true;
    else if (arg === '--url') {
      url = argv[++i];
      if (url === undefined) return '--url needs a value, e.g. --url http://127.0.0.1:8080';
    } else if (arg.startsWith('--url=')) url = arg.slice('--url='.length);
    else return `unexpected argument: ${arg}`;
  }
  const base = url ?? `http://127.0.0.1:${env.SIDECAR_HEALTH_PORT?.trim() || '8080'}`;
  let parsed: URL;
  try {
    parsed = new URL(base);
  } catch {
    return `--url: "${base}" is not a URL; write it with its scheme, e.g. http://127.0.0.1:8080`;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `--url: scheme ${parsed.protocol} is not supported; use http://`;
  if (!/\/healthz\/?$/.test(parsed.pathname)) parsed.pathname = `${trimEndOf(parsed.pathname, '/')}/healthz`;
  return { url: parsed.toString(), json };
}

type Answer = { ok: true; httpStatus: number; report: HealthReport } | { ok: false; reason: string };

export async function fetchHealth(url: string, timeoutMs: number): Promise<Answer> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${formatDuration(timeoutMs)}` : (cause?.code ?? cause?.message ?? (error as Error).message);
    return { ok: false, reason };
  }
  const text = await response.text().catch(() => '');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { ok: false, reason: `HTTP ${response.status}, but the body is not JSON (is this an infisical-sidecar /healthz?)` };
  }
  if (!isReport(body)) return { ok: false, reason: `HTTP ${response.status}, but the body is not an infisical-sidecar health report` };
  return { ok: true, httpStatus: response.status, report: body };
}

function isReport(body: unknown): body is HealthReport {
  if (typeof body !== 'object' || body === null) return false;
  const r = body as Record<string, unknown>;
  return typeof r.status === 'string' && typeof r.healthy === 'boolean' && typeof r.revision === 'number' && Array.isArray(r.folders);
}

const MEANING: Record<HealthStatus, string> = {
  ok: 'secrets are fresh',
  degraded: 'secrets are fresh, but the last attempt failed',
  cache: 'Infisical unreachable since start: the files come from the last-known-good cache',
  starting: 'no sync has finished yet',
  failing: 'no sync has ever succeeded',
  stale: 'the last complete sync is older than SIDECAR_MAX_STALENESS',
  missing_keys: 'a required key is missing; nothing new was written',
  lint_breaks: 'a value the consumer would misread (SIDECAR_LINT=error); nothing new was written',
};

interface Paint {
  ok(text: string): string;
  warn(text: string): string;
  bad(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

function paint(color: boolean): Paint {
  const wrap = (open: number, close: number) => (text: string) => (color ? `\u001b[${open}m${text}\u001b[${close}m` : text);
  return { ok: wrap(32, 39), warn: wrap(33, 39), bad: wrap(31, 39), dim: wrap(2, 22), bold: wrap(1, 22) };
}

export function formatStatus(report: HealthReport, options: { url: string; httpStatus: number; color: boolean; now: number }): string {
  const p = paint(options.color);
  const tone = report.status === 'ok' ? p.ok : report.healthy || report.status === 'starting' ? p.warn : p.bad;
  const when = (iso: string | null, future = false): string => {
    if (iso === null) return p.dim('never');
    const deltaMs = Date.parse(iso) - options.now;
    const relative = future ? (Math.round(deltaMs / 1000) <= 0 ? 'due now' : `in ${formatDuration(deltaMs)}`) : `${formatDuration(-deltaMs)} ago`;
    return `${iso} (${relative})`;
  };
  const rows: [string, string][] = [
    ['status', `${tone(p.bold(printable(report.status)))} (HTTP ${options.httpStatus}): ${MEANING[report.status as HealthStatus] ?? 'unknown status'}`],
    ['revision', `${report.revision} (${report.keyCount} key${report.keyCount === 1 ? '' : 's'})`],
    [
      'last success',
      report.lastSuccessAt === null
        ? p.dim('never')
        : `${report.lastSuccessAt} (${ageText(report.ageSeconds, report.maxStalenessSeconds, p)} ago; unhealthy after ${formatDuration(report.maxStalenessSeconds * 1000)})`,
    ],
    ['last attempt', when(report.lastAttemptAt)],
    ['next refresh', report.nextRefreshAt === null ? p.dim('not scheduled') : when(report.nextRefreshAt, true)],
    ['last change', report.lastChangeAt === null ? p.dim('none since start') : `${when(report.lastChangeAt)}${report.changedKeys.length > 0 ? `: ${report.changedKeys.map(printable).join(', ')}` : ''}`],
    ['failures', report.consecutiveFailures === 0 ? '0' : p.bad(`${report.consecutiveFailures} in a row`)],
  ];
  if (report.missingKeys.length > 0) rows.push(['missing keys', p.bad(report.missingKeys.map(printable).join(', '))]);
  // Older sidecars have no `warnings`; the rules behind them are in the logs and `check`.
  for (const severity of ['breaks', 'advice'] as const) {
    const keys = (report.warnings ?? []).filter((warning) => warning.severity === severity).map((warning) => printable(warning.key));
    if (keys.length > 0) rows.push([`lint: ${severity}`, (severity === 'breaks' ? p.bad : p.dim)(keys.join(', '))]);
  }

  const lines = [`infisical-sidecar ${p.dim(options.url)}`, ...table(rows)];
  lines.push('', ...folderTable(report.folders, report.maxStalenessSeconds, options.now, p));
  if (report.lastError) {
    lines.push(
      '',
      `${p.bad('last error')}  ${p.bold(printable(report.lastError.code))} ${p.dim(`at ${when(report.lastError.at)}`)}`,
      // A message may span lines (one problem each); every line is escaped on its own and indented.
      `            ${report.lastError.message.split('\n').map(printable).join('\n            ')}`,
      `${p.warn('hint')}        ${printable(report.lastError.hint)}`,
    );
  }
  return lines.join('\n');
}

function folderTable(folders: readonly FolderView[], maxStalenessSeconds: number, now: number, p: Paint): string[] {
  const header = ['FOLDER', 'AGE', 'SECRETS', 'LAST ERROR'];
  const body = folders.map((folder) => [
    printable(folder.path),
    folder.ageSeconds === null ? 'never' : formatDuration(folder.ageSeconds * 1000),
    folder.secretCount === null ? '-' : String(folder.secretCount),
    folder.lastError === null ? '-' : `${printable(folder.lastError.code)} (${formatDuration(now - Date.parse(folder.lastError.at))} ago)`,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...body.map((row) => row[column]!.length)));
  const line = (cells: string[], style: (cell: string, column: number) => string) =>
    cells
      .map((cell, column) => style(column === cells.length - 1 ? cell : cell.padEnd(widths[column]!), column))
      .join('  ')
      .trimEnd();
  return [
    line(header, (cell) => p.dim(cell)),
    ...body.map((row, index) =>
      line(row, (cell, column) => {
        const folder = folders[index]!;
        if (column === 1) return folder.ageSeconds === null || folder.ageSeconds > maxStalenessSeconds ? p.bad(cell) : cell;
        if (column === 3 && folder.lastError !== null) return p.bad(cell);
        return cell;
      }),
    ),
  ];
}

function table(rows: readonly [string, string][]): string[] {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`);
}

function ageText(ageSeconds: number | null, maxStalenessSeconds: number, p: Paint): string {
  if (ageSeconds === null) return 'never';
  const text = formatDuration(ageSeconds * 1000);
  return ageSeconds > maxStalenessSeconds ? p.bad(text) : text;
}
