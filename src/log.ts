/**
 * One pino root logger; each stage logs through a child with `component` set.
 *
 * The code logs key *names*, counts and paths, never values; the redact list is a second line of
 * defence should a value-bearing object ever be passed by mistake.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

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
