/**
 * One pino root logger; each stage logs through a child with `component` set.
 *
 * The code logs key *names*, counts and paths, never values; the redact list is a second line of
 * defence should a value-bearing object ever be passed by mistake.
 *
 * Format: JSON lines (containers, log collectors), or human-readable lines from pino-pretty when a
 * person is watching a terminal (SIDECAR_LOG_FORMAT=auto|json|pretty). Redaction happens in pino,
 * before either format sees the object, so both are covered by it.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config/schema.js';

export type { Logger };

export const REDACT_PATHS = [
  'clientSecret',
  '*.clientSecret',
  'accessToken',
  '*.accessToken',
  'token',
  '*.token',
  'value',
  '*.value',
  'values',
  '*.values',
  'secretValue',
  '*.secretValue',
  'headers.authorization',
  '*.headers.authorization',
];

/** JSON lines to stdout (written synchronously, so nothing is lost when the process exits). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: 'infisical-sidecar' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

/** SIDECAR_LOG_FORMAT: the formats are those its schema accepts. */
export type LogFormat = Config['logFormat'];

export interface LogOutput {
  readonly format: LogFormat;
  /** Where lines go; default stdout. */
  readonly destination?: DestinationStream | undefined;
  /** Whether the destination is a terminal (decides `auto`). */
  readonly isTTY: boolean;
  /** Colours in pretty output: decide with `colorEnabled` (text.ts), the rule `status` uses too. */
  readonly color: boolean;
}

/** `auto` means pretty for a person at a terminal, JSON for everything else. */
export function resolveLogFormat(format: LogFormat, isTTY: boolean): 'json' | 'pretty' {
  return format === 'auto' ? (isTTY ? 'pretty' : 'json') : format;
}

/**
 * The CLI's logger. pino-pretty is loaded only when used, and runs in-process and synchronously
 * (`prettyFactory`, not its worker-thread transport), so the last line before `process.exit` is not
 * lost and the bundled image needs no transport files on disk.
 */
export async function createCliLogger(level: string, output: LogOutput): Promise<Logger> {
  if (resolveLogFormat(output.format, output.isTTY) === 'json') return createLogger(level, output.destination);
  const pretty = await import('pino-pretty');
  const prettify = (pretty.prettyFactory ?? pretty.default.prettyFactory)({
    colorize: output.color,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    ignore: 'pid,hostname,name,component',
    messageFormat: '{if component}{component}: {end}{msg}',
    singleLine: false,
  });
  const sink = output.destination ?? pino.destination({ fd: 1, sync: true });
  return createLogger(level, { write: (line: string) => sink.write(prettify(line)) });
}
