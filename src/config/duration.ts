/**
 * Durations are written with units, as the Infisical Agent and Go accept them: `500ms`, `30s`, `5m`,
 * `1h`, `1h30m`, `2d`. A bare number is refused: "300" could be seconds or milliseconds, and guessing
 * wrong turns a 5-minute refresh into a tight loop. (Showing a duration to a person is
 * `formatDuration` in src/text.ts.)
 */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
/** Sticky: each part is read where the last one ended, never searched for (DURATION vouched for the text). */
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/** Parses `1h30m` into milliseconds; returns undefined when the text is not a duration with units. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (!DURATION.test(trimmed)) return undefined;
  let total = 0;
  PART.lastIndex = 0;
  for (let part = PART.exec(trimmed); part !== null; part = PART.exec(trimmed)) {
    total += Number(part[1]) * UNIT_MS[part[2] as keyof typeof UNIT_MS];
  }
  return Math.round(total);
}
