/**
 * The lint stage: checks the merged snapshot (derived values included) against what its consumer
 * will make of each value, after render's derive step and before output. Pure: no I/O, no config.
 *
 * Findings name the key, the rule and the position class, never the value or any part of it; where
 * they are shown (logs, `check`, `/healthz`, `/metrics`, `status`) is up to the later stages.
 */
import type { SettingValue } from '../config/schema.js';
import type { Snapshot } from '../render/types.js';
import { printable } from '../text.js';
import { whitespaceProblems, nearMissOf } from './generic.js';
import { glitchtipProblems, type Placed } from './glitchtip.js';
import { RULES, type Finding, type RuleId, type Severity } from './rules.js';

export { RULES, type Finding, type RuleId, type RuleScope, type RuleSpec, type Severity } from './rules.js';
export { GLITCHTIP_URL_KEYS } from './glitchtip.js';

/** SIDECAR_CONSUMER: whose reading of the values the consumer rules model. */
export type Consumer = SettingValue<'SIDECAR_CONSUMER'>;

export interface LintOptions {
  readonly consumer: Consumer;
  /** SIDECAR_REQUIRED_KEYS: a present key spelled almost like a missing one is named. */
  readonly requiredKeys: readonly string[];
  /** Keys rendered from a template: their findings point at the template. */
  readonly derivedKeys: ReadonlySet<string> | readonly string[];
}

/** Every finding for the snapshot, sorted by key, then in rule-table order. */
export function lintSnapshot(snapshot: Snapshot, options: LintOptions): Finding[] {
  const derived = new Set(options.derivedKeys);
  const missing = options.requiredKeys.filter((key) => !snapshot.has(key));
  const findings: Finding[] = [];
  for (const [key, value] of snapshot) {
    const nearMiss = missing.length > 0 && !options.requiredKeys.includes(key) ? nearMissOf(key, missing) : undefined;
    if (nearMiss !== undefined) {
      findings.push(finding(key, 'near-miss-key', `key name is spelled almost like the required key ${printable(nearMiss)}, which is missing`, false));
    }
    const placed: Placed[] = [...whitespaceProblems(value), ...(options.consumer === 'glitchtip' ? glitchtipProblems(key, value) : [])];
    for (const { ruleId, where } of placed) findings.push(finding(key, ruleId, describe(ruleId, where), derived.has(key)));
  }
  const order = Object.keys(RULES);
  return findings.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : order.indexOf(a.ruleId) - order.indexOf(b.ruleId)));
}

/** What `/healthz` may show: which keys have findings and how bad, not which rule (the health port should not learn which password has which weakness). */
export function toWarnings(findings: readonly Finding[]): { key: string; severity: Severity }[] {
  const worst = new Map<string, Severity>();
  for (const { key, severity } of findings) if (worst.get(key) !== 'breaks') worst.set(key, severity);
  return [...worst].map(([key, severity]) => ({ key, severity }));
}

/** How many findings of each severity (for /metrics). */
export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { breaks: 0, advice: 0 };
  for (const { severity } of findings) counts[severity]++;
  return counts;
}

/** What a rule found at a place, as the message says it: a phrase per rule, the place a position class. */
const PROBLEMS: Readonly<Record<RuleId, string>> = {
  'trailing-newline': 'ends with a newline',
  'surrounding-whitespace': 'has a space or tab',
  'near-miss-key': 'is a near miss of a required key',
  'dollar-prefix': 'starts with `$`, which django-environ reads as a reference to another variable',
  'url-scheme': 'is not `scheme://…` with a scheme django-environ accepts',
  'url-userinfo-delimiter': 'contains an unescaped `/`, `?` or `#`',
  'url-userinfo-at': 'contains an unescaped `@`',
  'url-bracket': 'contains an unescaped `[` or `]`',
  'url-dropped-control': 'contains a tab, carriage return or line feed, which Python deletes',
  'url-nfkc-delimiter': 'contains a character that NFKC normalises into a URL delimiter',
  'url-invalid-character': 'contains a character a URL may not hold unescaped (space, control, quote, non-ASCII…)',
  'url-percent-literal': 'contains a `%` escape of a letter, digit or `-._~`, which is decoded',
  'url-percent-stray': 'contains a `%` not followed by two hex digits',
  'url-no-database-name': 'is not decoded as written, because the database URL has no database name',
  'url-port': 'is not a number from 0 to 65535',
  'url-plus-in-name': 'contains a `+`, which is read as a space',
  'secret-key-short': 'is shorter than 50 characters',
  'secret-key-repetitive': 'has fewer than 5 distinct characters',
  'secret-key-insecure-prefix': 'starts with `django-insecure-`',
  'from-email-not-address': 'is not an e-mail address',
};

function describe(ruleId: RuleId, where: string): string {
  return `${where} ${PROBLEMS[ruleId]}`;
}

function finding(key: string, ruleId: RuleId, problem: string, derived: boolean): Finding {
  const rule = RULES[ruleId];
  const origin = derived ? ' (derived: rendered from its template)' : '';
  return {
    key,
    ruleId,
    severity: rule.severity,
    message: `${printable(key)}${origin}: ${problem} [${ruleId}, ${rule.severity}]`,
    fix: derived ? `Fix the template (the \`url\` filter encodes a value for a URL part). ${rule.fix}` : rule.fix,
  };
}
