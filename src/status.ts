/**
 * `infisical-sidecar status [--url URL] [--json]`: reads a running sidecar's `/healthz` and prints
 * it for a person: overall status, revision, freshness, next refresh, one row per folder, and the
 * last error with its hint. Colours only when stdout is a terminal and NO_COLOR is unset.
 *
 * Exit codes (for scripts and `watch`): 0 healthy (HTTP 200), 1 unhealthy (503 with a report),
 * 2 unreachable (no answer, or not a sidecar's /healthz), 64 bad arguments.
 *
 * Everything printed comes from /healthz, which never carries a value; text that came from a
 * server (error messages) has its control characters escaped so it cannot drive the terminal.
 */
import type { Env } from './config/load.js';
import type { FolderView, HealthReport, HealthStatus } from './health/state.js';

export const STATUS_EXIT = Object.freeze({ healthy: 0, unhealthy: 1, unreachable: 2, usage: 64 });

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
    return STATUS_EXIT.usage;
  }
  const answer = await fetchHealth(args.url, io.timeoutMs ?? 3_000);
  if (!answer.ok) {
    io.stderr(
      `infisical-sidecar status: ${args.url} is unreachable: ${clean(answer.reason)}\n` +
        'hint: is the sidecar running, and is --url its health address (SIDECAR_HEALTH_HOST:SIDECAR_HEALTH_PORT)? Inside its container: infisical-sidecar status',
    );
    return STATUS_EXIT.unreachable;
  }
  const healthy = answer.httpStatus === 200 && answer.report.healthy;
  if (args.json) io.stdout(JSON.stringify(answer.report, null, 2));
  else io.stdout(formatStatus(answer.report, { url: args.url, httpStatus: answer.httpStatus, color: useColor(io.isTTY, io.env), now: (io.now ?? Date.now)() }));
  return healthy ? STATUS_EXIT.healthy : STATUS_EXIT.unhealthy;
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
  if (!/\/healthz\/?$/.test(parsed.pathname)) parsed.pathname = `${parsed.pathname.replace(/\/+$/, '')}/healthz`;
  return { url: parsed.toString(), json };
}

type Answer = { ok: true; httpStatus: number; report: HealthReport } | { ok: false; reason: string };

export async function fetchHealth(url: string, timeoutMs: number): Promise<Answer> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000}s` : (cause?.code ?? cause?.message ?? (error as Error).message);
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

export function useColor(isTTY: boolean, env: Env): boolean {
  return isTTY && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}

const MEANING: Record<HealthStatus, string> = {
  ok: 'secrets are fresh',
  degraded: 'secrets are fresh, but the last attempt failed',
  starting: 'no sync has finished yet',
  failing: 'no sync has ever succeeded',
  stale: 'the last complete sync is older than SIDECAR_MAX_STALENESS',
  missing_keys: 'a required key is missing; nothing new was written',
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
    const delta = Math.round((Date.parse(iso) - options.now) / 1000);
    const relative = future ? (delta <= 0 ? 'due now' : `in ${duration(delta)}`) : `${duration(Math.max(0, -delta))} ago`;
    return `${iso} (${relative})`;
  };
  const rows: [string, string][] = [
    ['status', `${tone(p.bold(report.status))} (HTTP ${options.httpStatus}): ${MEANING[report.status as HealthStatus] ?? 'unknown status'}`],
    ['revision', `${report.revision} (${report.keyCount} key${report.keyCount === 1 ? '' : 's'})`],
    [
      'last success',
      report.lastSuccessAt === null
        ? p.dim('never')
        : `${report.lastSuccessAt} (${ageText(report.ageSeconds, report.maxStalenessSeconds, p)} ago; unhealthy after ${duration(report.maxStalenessSeconds)})`,
    ],
    ['last attempt', when(report.lastAttemptAt)],
    ['next refresh', report.nextRefreshAt === null ? p.dim('not scheduled') : when(report.nextRefreshAt, true)],
    ['last change', report.lastChangeAt === null ? p.dim('none since start') : `${when(report.lastChangeAt)}${report.changedKeys.length > 0 ? `: ${report.changedKeys.map(clean).join(', ')}` : ''}`],
    ['failures', report.consecutiveFailures === 0 ? '0' : p.bad(`${report.consecutiveFailures} in a row`)],
  ];
  if (report.missingKeys.length > 0) rows.push(['missing keys', p.bad(report.missingKeys.map(clean).join(', '))]);

  const lines = [`infisical-sidecar ${p.dim(options.url)}`, ...table(rows)];
  lines.push('', ...folderTable(report.folders, report.maxStalenessSeconds, options.now, p));
  if (report.lastError) {
    lines.push(
      '',
      `${p.bad('last error')}  ${p.bold(report.lastError.code)} ${p.dim(`at ${when(report.lastError.at)}`)}`,
      `            ${clean(report.lastError.message).split('\n').join('\n            ')}`,
      `${p.warn('hint')}        ${clean(report.lastError.hint)}`,
    );
  }
  return lines.join('\n');
}

function folderTable(folders: readonly FolderView[], maxStalenessSeconds: number, now: number, p: Paint): string[] {
  const header = ['FOLDER', 'AGE', 'SECRETS', 'LAST ERROR'];
  const body = folders.map((folder) => [
    clean(folder.path),
    folder.ageSeconds === null ? 'never' : duration(folder.ageSeconds),
    folder.secretCount === null ? '-' : String(folder.secretCount),
    folder.lastError === null ? '-' : `${folder.lastError.code} (${duration(Math.max(0, Math.round((now - Date.parse(folder.lastError.at)) / 1000)))} ago)`,
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
  const text = duration(ageSeconds);
  return ageSeconds > maxStalenessSeconds ? p.bad(text) : text;
}

/** 42s, 4m 18s, 2h 5m, 3d 4h. */
export function duration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  if (s < 60) return `${s}s`;
  if (s < 3_600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h${Math.floor((s % 3_600) / 60) ? ` ${Math.floor((s % 3_600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3_600) ? ` ${Math.floor((s % 86_400) / 3_600)}h` : ''}`;
}

/** Escapes control characters (ANSI sequences included) in text that came from elsewhere. */
function clean(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
