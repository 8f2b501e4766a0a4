/**
 * Templates for derived values, e.g. GlitchTip's
 * `postgres://glitchtip_maintainer:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip`.
 *
 * Syntax: `{{ KEY }}` or `{{ KEY | filter | filter }}`, whitespace optional; all other text is literal.
 * There is deliberately no `$` in the syntax: Compose would interpolate it in compose.yaml.
 */

import { RenderError } from '../errors.js';
import { compareCodeUnits } from './keys.js';
import { FILTER_NAMES, FILTERS, type Filter } from './filters.js';
import type { Snapshot } from './types.js';

/** A parsed template: its source text and the keys it refers to (each once, in order of appearance). */
export interface Template {
  source: string;
  keys: readonly string[];
}

type Segment = { kind: 'text'; text: string } | { kind: 'placeholder'; key: string; filters: readonly Filter[] };

/** Segments of templates made by `parseTemplate`, so rendering does not parse again. */
const segmentsByTemplate = new WeakMap<Template, readonly Segment[]>();

const OPEN = '{{';
const CLOSE = '}}';
/** Longest piece of template text echoed in an error message. */
const MAX_ECHO = 40;

/**
 * Parses a template. Throws `RenderError` `SIDECAR_TEMPLATE_INVALID` for an unclosed `{{`, an empty
 * placeholder, a missing key or filter name, a key with whitespace or braces, or an unknown filter;
 * the message names the problem and its column (and line, for multi-line sources).
 */
export function parseTemplate(source: string): Template {
  const segments = parseSegments(source);
  const template: Template = Object.freeze({ source, keys: Object.freeze(referencedKeys(segments)) });
  segmentsByTemplate.set(template, segments);
  return template;
}

/**
 * Renders a template against a snapshot. Throws `RenderError` `SIDECAR_TEMPLATE_MISSING_KEY` naming
 * every referenced key the snapshot lacks. Messages name keys, never values.
 */
export function renderTemplate(template: Template, snapshot: Snapshot): string {
  const segments = segmentsOf(template);
  const missing = missingKeys(segments, snapshot);
  if (missing.length > 0) throw new RenderError('SIDECAR_TEMPLATE_MISSING_KEY', describeMissing(missing));
  return segments.map((segment) => renderSegment(segment, snapshot)).join('');
}

/**
 * Returns a new snapshot: the fetched one plus every derived key rendered from its template.
 * Templates see the fetched keys only (not other derived keys), so order and cycles cannot matter;
 * a derived key replaces a fetched key of the same name. All missing references across all templates
 * are reported in one `SIDECAR_TEMPLATE_MISSING_KEY` error, in derived-key order.
 */
export function applyDerived(snapshot: Snapshot, derived: ReadonlyMap<string, Template>): Snapshot {
  const result = new Map(snapshot);
  const problems: string[] = [];
  const byName = [...derived.entries()].sort(([a], [b]) => compareCodeUnits(a, b));
  for (const [name, template] of byName) {
    const segments = segmentsOf(template);
    const missing = missingKeys(segments, snapshot);
    if (missing.length > 0) {
      const derivedNote = missing.some((key) => derived.has(key)) ? ' (templates see fetched keys only, not other derived keys)' : '';
      problems.push(`derived key ${JSON.stringify(name)}: ${describeMissing(missing)}${derivedNote}`);
      continue;
    }
    result.set(name, segments.map((segment) => renderSegment(segment, snapshot)).join(''));
  }
  if (problems.length > 0) throw new RenderError('SIDECAR_TEMPLATE_MISSING_KEY', problems.join('; '));
  return result;
}

function segmentsOf(template: Template): readonly Segment[] {
  // A hand-built Template object (not from parseTemplate) is parsed from its source here.
  return segmentsByTemplate.get(template) ?? parseSegments(template.source);
}

function renderSegment(segment: Segment, snapshot: Snapshot): string {
  if (segment.kind === 'text') return segment.text;
  // missingKeys() ran first, so the key is present.
  return segment.filters.reduce((value, filter) => filter(value), snapshot.get(segment.key) ?? '');
}

function referencedKeys(segments: readonly Segment[]): string[] {
  const keys = new Set<string>();
  for (const segment of segments) if (segment.kind === 'placeholder') keys.add(segment.key);
  return [...keys];
}

function missingKeys(segments: readonly Segment[], snapshot: Snapshot): string[] {
  return referencedKeys(segments).filter((key) => !snapshot.has(key));
}

function describeMissing(keys: readonly string[]): string {
  const quoted = keys.map((key) => JSON.stringify(key));
  const list = quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(', ')} and ${quoted.at(-1)}`;
  return `template refers to ${list}, which ${keys.length === 1 ? 'is' : 'are'} not among the fetched secrets`;
}

function parseSegments(source: string): Segment[] {
  const segments: Segment[] = [];
  let cursor = 0;
  while (cursor < source.length) {
    const open = source.indexOf(OPEN, cursor);
    if (open === -1) {
      segments.push({ kind: 'text', text: source.slice(cursor) });
      break;
    }
    if (open > cursor) segments.push({ kind: 'text', text: source.slice(cursor, open) });
    const close = source.indexOf(CLOSE, open + OPEN.length);
    const nextOpen = source.indexOf(OPEN, open + OPEN.length);
    if (close === -1 || (nextOpen !== -1 && nextOpen < close)) throw invalid('"{{" is never closed by "}}"', source, open);
    segments.push(parsePlaceholder(source, open, close));
    cursor = close + CLOSE.length;
  }
  return segments;
}

/** One `|`-separated part of a placeholder: its trimmed text and where that text starts. */
interface Token {
  text: string;
  index: number;
  /** Index of the `|` before this part; -1 for the key part. */
  pipeIndex: number;
}

function parsePlaceholder(source: string, open: number, close: number): Segment {
  const tokens = splitPlaceholder(source, open + OPEN.length, close);
  if (tokens.length === 1 && tokens[0]?.text === '') throw invalid('empty placeholder "{{ }}"', source, open);
  const [keyToken, ...filterTokens] = tokens;
  if (keyToken === undefined || keyToken.text === '') throw invalid('missing key name before "|"', source, keyToken?.index ?? open);
  checkToken(keyToken, 'key', source);
  const filters = filterTokens.map((token) => resolveFilter(token, source));
  return { kind: 'placeholder', key: keyToken.text, filters };
}

function splitPlaceholder(source: string, start: number, end: number): Token[] {
  const tokens: Token[] = [];
  let partStart = start;
  for (let i = start; i <= end; i++) {
    if (i < end && source[i] !== '|') continue;
    const raw = source.slice(partStart, i);
    const leading = raw.length - raw.trimStart().length;
    tokens.push({ text: raw.trim(), index: partStart + leading, pipeIndex: partStart === start ? -1 : partStart - 1 });
    partStart = i + 1;
  }
  return tokens;
}

function checkToken(token: Token, what: 'key' | 'filter', source: string): void {
  const space = token.text.search(/\s/);
  if (space !== -1) {
    throw invalid(`expected "|" or "}}" after ${what} ${echo(token.text.slice(0, space))}`, source, token.index + space);
  }
  const brace = token.text.search(/[{}]/);
  if (brace !== -1) throw invalid(`"${token.text.charAt(brace)}" in ${what} name`, source, token.index + brace);
}

function resolveFilter(token: Token, source: string): Filter {
  if (token.text === '') throw invalid('missing filter name after "|"', source, token.pipeIndex);
  checkToken(token, 'filter', source);
  const filter = FILTERS.get(token.text);
  if (filter === undefined) {
    throw invalid(`unknown filter ${echo(token.text)} (filters: ${FILTER_NAMES.join(', ')})`, source, token.index);
  }
  return filter;
}

/** Quotes template text for a message, shortened: templates are config, but keep messages one line. */
function echo(text: string): string {
  return JSON.stringify(text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text);
}

function invalid(problem: string, source: string, index: number): RenderError {
  return new RenderError('SIDECAR_TEMPLATE_INVALID', `invalid template at ${describePosition(source, index)}: ${problem}`);
}

/** 1-based column (UTF-16 units), with the line too when the source has several lines. */
function describePosition(source: string, index: number): string {
  const before = source.slice(0, index);
  const lineStart = before.lastIndexOf('\n') + 1;
  const column = index - lineStart + 1;
  if (!source.includes('\n')) return `column ${column}`;
  const line = before.split('\n').length;
  return `line ${line}, column ${column}`;
}
