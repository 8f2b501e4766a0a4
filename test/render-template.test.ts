/**
 * Derived-value templates: syntax, every filter, exact error codes and messages, and applyDerived.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RenderError } from '../src/errors.js';
import { applyDerived, parseTemplate, percentEncode, renderTemplate, renderShellEnv, type Template } from '../src/render/index.js';

const GLITCHTIP_DATABASE_URL = 'postgres://glitchtip_maintainer:{{ POSTGRES_PASSWORD | url }}@postgres:5432/glitchtip';

function thrown(action: () => unknown): RenderError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(RenderError);
    return error as RenderError;
  }
  return expect.fail('expected a RenderError');
}

describe('parseTemplate', () => {
  it.each([
    ['no placeholder', 'plain text', []],
    ['one key', '{{ A }}', ['A']],
    ['no whitespace', '{{A|url|trim}}', ['A']],
    ['lots of whitespace', '{{   A   |   url   }}', ['A']],
    ['keys once, in order of appearance', '{{ B }}-{{ A }}-{{ B | json }}', ['B', 'A']],
    ['keys that are not env names', '{{ db.password }}{{ my-key }}{{ clé }}', ['db.password', 'my-key', 'clé']],
    ['the GlitchTip DATABASE_URL', GLITCHTIP_DATABASE_URL, ['POSTGRES_PASSWORD']],
  ])('%s', (_name, source, keys) => {
    const template = parseTemplate(source);
    expect(template).toEqual({ source, keys });
    expect(Object.isFrozen(template)).toBe(true);
  });

  it.each([
    ['unclosed at the end', 'abc {{ A', 'invalid template at column 5: "{{" is never closed by "}}"'],
    ['unclosed before the next placeholder', '{{ A {{ B }}', 'invalid template at column 1: "{{" is never closed by "}}"'],
    ['empty placeholder', 'x{{ }}', 'invalid template at column 2: empty placeholder "{{ }}"'],
    ['empty placeholder without spaces', '{{}}', 'invalid template at column 1: empty placeholder "{{ }}"'],
    ['missing key', '{{ | url }}', 'invalid template at column 4: missing key name before "|"'],
    ['missing filter', '{{ A | }}', 'invalid template at column 6: missing filter name after "|"'],
    ['missing filter between pipes', '{{ A || url }}', 'invalid template at column 6: missing filter name after "|"'],
    ['space in key', '{{ A B }}', 'invalid template at column 5: expected "|" or "}}" after key "A"'],
    ['space in filter', '{{ A | url json }}', 'invalid template at column 11: expected "|" or "}}" after filter "url"'],
    ['brace in key', '{{ A} }}', 'invalid template at column 5: "}" in key name'],
    [
      'unknown filter',
      '{{ A | urlquery }}',
      'invalid template at column 8: unknown filter "urlquery" (filters: url, urlencode, urluserinfo, json, base64, shell, trim)',
    ],
    [
      'inherited property name is not a filter',
      '{{ A | constructor }}',
      'invalid template at column 8: unknown filter "constructor" (filters: url, urlencode, urluserinfo, json, base64, shell, trim)',
    ],
    [
      'multi-line source reports the line',
      'first\nsecond {{ A | nope }}',
      'invalid template at line 2, column 15: unknown filter "nope" (filters: url, urlencode, urluserinfo, json, base64, shell, trim)',
    ],
    [
      'long filter names are shortened',
      `{{ A | ${'x'.repeat(60)} }}`,
      `invalid template at column 8: unknown filter "${'x'.repeat(40)}…" (filters: url, urlencode, urluserinfo, json, base64, shell, trim)`,
    ],
  ])('rejects %s with SIDECAR_TEMPLATE_INVALID', (_name, source, message) => {
    const error = thrown(() => parseTemplate(source));
    expect(error.code).toBe('SIDECAR_TEMPLATE_INVALID');
    expect(error.message).toBe(message);
    expect(error.exitCode).toBe(78);
  });

  it('treats single braces, a stray "}}" and $ as literal text', () => {
    const template = parseTemplate('{a} }} $A ${B} {{ A }}');
    expect(renderTemplate(template, new Map([['A', 'x']]))).toBe('{a} }} $A ${B} x');
  });
});

describe('filters', () => {
  // Expected strings are Python's urllib.parse.quote(value, safe="") (checked with Python 3).
  it.each([
    ['p@ss/w:rd', 'p%40ss%2Fw%3Ard'],
    ['a b+c', 'a%20b%2Bc'],
    ['~user.name-1_2', '~user.name-1_2'],
    ['Ab9-._~', 'Ab9-._~'],
    ['ünï', '%C3%BCn%C3%AF'],
    ['😀', '%F0%9F%98%80'],
    ["!*'();:@&=+$,/?#[]", '%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D'],
    ['%', '%25'],
    ['', ''],
    ['\n\t"\\', '%0A%09%22%5C'],
    ['P4ss w0rd/+=?&#%', 'P4ss%20w0rd%2F%2B%3D%3F%26%23%25'],
  ])('url(%j) is %j like Python quote(v, safe="")', (value, expected) => {
    for (const name of ['url', 'urlencode', 'urluserinfo']) {
      expect(renderTemplate(parseTemplate(`{{ V | ${name} }}`), new Map([['V', value]]))).toBe(expected);
    }
  });

  it('url encodes a lone surrogate as U+FFFD instead of throwing', () => {
    expect(percentEncode('a\uD800')).toBe('a%EF%BF%BD');
  });

  it('url output decodes back to the value and holds only unreserved characters and %XX', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (value) => {
        const encoded = percentEncode(value);
        expect(encoded).toMatch(/^(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*$/);
        expect(decodeURIComponent(encoded)).toBe(value);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['json', `a"b\\c\n`, String.raw`"a\"b\\c\n"`],
    ['base64', 'pässwörd', 'cMOkc3N3w7ZyZA=='],
    ['base64', '', ''],
    ['shell', "it's", String.raw`'it'\''s'`],
    ['shell', '', `''`],
    ['trim', ' \t\n v a l \u00a0\ufeff', 'v a l'],
  ])('%s(%j) is %j', (filter, value, expected) => {
    expect(renderTemplate(parseTemplate(`{{ V | ${filter} }}`), new Map([['V', value]]))).toBe(expected);
  });

  it('applies chained filters left to right', () => {
    const snapshot = new Map([['V', ' a b ']]);
    expect(renderTemplate(parseTemplate('{{ V | trim | url }}'), snapshot)).toBe('a%20b');
    expect(renderTemplate(parseTemplate('{{ V | url | trim }}'), snapshot)).toBe('%20a%20b%20');
    expect(renderTemplate(parseTemplate('{{ V | json | base64 }}'), snapshot)).toBe(Buffer.from('" a b "').toString('base64'));
  });
});

describe('renderTemplate', () => {
  it('builds the GlitchTip DATABASE_URL so a URL parser gets the password back', () => {
    const password = "p@ss/w:rd?#%+ 'x'$y😀";
    const url = renderTemplate(parseTemplate(GLITCHTIP_DATABASE_URL), new Map([['POSTGRES_PASSWORD', password]]));
    expect(url).toBe('postgres://glitchtip_maintainer:p%40ss%2Fw%3Ard%3F%23%25%2B%20%27x%27%24y%F0%9F%98%80@postgres:5432/glitchtip');
    const parsed = new URL(url);
    expect(decodeURIComponent(parsed.password)).toBe(password);
    expect([parsed.username, parsed.hostname, parsed.port, parsed.pathname]).toEqual(['glitchtip_maintainer', 'postgres', '5432', '/glitchtip']);
  });

  it('names every missing key, never a value', () => {
    const template = parseTemplate('{{ A }}{{ MISSING_1 }}{{ B }}{{ MISSING_2 }}');
    const error = thrown(() => renderTemplate(template, new Map([['A', 'secret-a'], ['B', 'secret-b']])));
    expect(error.code).toBe('SIDECAR_TEMPLATE_MISSING_KEY');
    expect(error.message).toBe('template refers to "MISSING_1" and "MISSING_2", which are not among the fetched secrets');
    expect(error.exitCode).toBe(65);
  });

  it('names a single missing key', () => {
    const error = thrown(() => renderTemplate(parseTemplate('{{ POSTGRES_PASSWORD | url }}'), new Map()));
    expect(error.message).toBe('template refers to "POSTGRES_PASSWORD", which is not among the fetched secrets');
  });

  it('renders a hand-built Template by parsing its source', () => {
    const handMade: Template = { source: 'x={{ A | url }}', keys: ['A'] };
    expect(renderTemplate(handMade, new Map([['A', 'a b']]))).toBe('x=a%20b');
    expect(thrown(() => renderTemplate({ source: '{{ A | nope }}', keys: ['A'] }, new Map([['A', '']]))).code).toBe('SIDECAR_TEMPLATE_INVALID');
  });
});

describe('applyDerived', () => {
  const fetched = new Map([
    ['POSTGRES_PASSWORD', 'p@ss'],
    ['DATABASE_URL', 'fetched-url'],
    ['EMAIL_PASSWORD', 'm:x'],
  ]);

  it('adds derived keys, lets them replace fetched keys, and leaves the input alone', () => {
    const derived = new Map([
      ['DATABASE_URL', parseTemplate(GLITCHTIP_DATABASE_URL)],
      ['EMAIL_URL', parseTemplate('smtp+tls://user:{{ EMAIL_PASSWORD | urluserinfo }}@mail:587')],
    ]);
    const result = applyDerived(fetched, derived);
    expect(result).toEqual(
      new Map([
        ['POSTGRES_PASSWORD', 'p@ss'],
        ['DATABASE_URL', 'postgres://glitchtip_maintainer:p%40ss@postgres:5432/glitchtip'],
        ['EMAIL_PASSWORD', 'm:x'],
        ['EMAIL_URL', 'smtp+tls://user:m%3Ax@mail:587'],
      ]),
    );
    expect(fetched.get('DATABASE_URL')).toBe('fetched-url');
  });

  it('renders templates against fetched values only, so a derived key can wrap the fetched one', () => {
    const result = applyDerived(fetched, new Map([['DATABASE_URL', parseTemplate('{{ DATABASE_URL }}?sslmode=require')]]));
    expect(result.get('DATABASE_URL')).toBe('fetched-url?sslmode=require');
  });

  it('reports every missing reference of every template in one error, in derived-key order', () => {
    const derived = new Map([
      ['Z_URL', parseTemplate('{{ NOPE }}')],
      ['A_URL', parseTemplate('{{ EMAIL_URL }}{{ ALSO_NOPE }}')],
      ['EMAIL_URL', parseTemplate('{{ EMAIL_PASSWORD }}')],
    ]);
    const error = thrown(() => applyDerived(fetched, derived));
    expect(error.code).toBe('SIDECAR_TEMPLATE_MISSING_KEY');
    expect(error.message).toBe(
      'derived key "A_URL": template refers to "EMAIL_URL" and "ALSO_NOPE", which are not among the fetched secrets ' +
        '(templates see fetched keys only, not other derived keys); ' +
        'derived key "Z_URL": template refers to "NOPE", which is not among the fetched secrets',
    );
  });

  it('with no derived keys returns an equal copy', () => {
    const result = applyDerived(fetched, new Map());
    expect(result).toEqual(fetched);
    expect(result).not.toBe(fetched);
  });

  it('a derived value with quotes and $ still sources byte-exact through the env format', () => {
    const result = applyDerived(new Map([['P', "a'b$c"]]), new Map([['DSN', parseTemplate("x='{{ P | shell }}' {{ P | json }}")]]));
    const line = renderShellEnv(result).content.toString('utf8').split('\n').find((l) => l.startsWith('DSN='));
    expect(line).toBe(String.raw`DSN='x='\'''\''a'\''\'\'''\''b$c'\'''\'' "a'\''b$c"'`);
  });
});
