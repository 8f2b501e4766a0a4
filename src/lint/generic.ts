/**
 * The rules every consumer needs: copy-paste whitespace, and a key spelled almost like a required one.
 */
import { trimEndOf } from '../text.js';
import type { Placed } from './glitchtip.js';

export function whitespaceProblems(value: string): Placed[] {
  const problems: Placed[] = [];
  if (value.endsWith('\n')) problems.push({ ruleId: 'trailing-newline', where: 'end of the value' });
  const withoutNewlines = trimEndOf(value, '\r\n');
  if (/^\s/.test(value)) problems.push({ ruleId: 'surrounding-whitespace', where: 'start of the value' });
  if (/\s$/.test(withoutNewlines)) problems.push({ ruleId: 'surrounding-whitespace', where: 'end of the value' });
  return problems;
}

/** Names compared the way an operator misreads them: case, and `-` `.` or a space for `_`. */
function canonical(name: string): string {
  return name.trim().toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** The missing key that `key` is a near miss of (same canonical name, or one edit apart), if any. */
export function nearMissOf(key: string, missing: readonly string[]): string | undefined {
  const name = canonical(key);
  return missing.find((wanted) => {
    const target = canonical(wanted);
    return name === target || (target.length >= 5 && editDistanceAtMostOne(name, target));
  });
}

/** One insertion, deletion, substitution or swap of neighbours (optimal string alignment ≤ 1). */
function editDistanceAtMostOne(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 1) return false;
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  const [restA, restB] = [a.slice(start), b.slice(start)];
  if (restA.length === restB.length) {
    return restA.slice(1) === restB.slice(1) || (restA[0] === restB[1] && restA[1] === restB[0] && restA.slice(2) === restB.slice(2));
  }
  return restA.length > restB.length ? restA.slice(1) === restB : restB.slice(1) === restA;
}
