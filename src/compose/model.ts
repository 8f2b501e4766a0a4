/**
 * The part of a Compose model the override generator reads, in one shape whichever form it came in:
 * the JSON `docker compose config --format json` prints (normalised: lists for commands, maps for
 * environment and depends_on, env_file already merged into environment, `${...}` interpolated) or a
 * compose file as written (strings for commands, `KEY=VALUE` lists, env_file names, anchors resolved
 * by the YAML parser). Strings keep Compose's escaping: a literal `$` stays `$$`, as both forms print it.
 */

export interface ServiceModel {
  readonly name: string;
  readonly image: string | undefined;
  /** The base file's command, split as Compose splits a string command; undefined = the image's CMD. */
  readonly command: readonly string[] | undefined;
  readonly entrypoint: readonly string[] | undefined;
  /** Variable → value; null for a name without a value (passed through from Compose's environment). */
  readonly environment: ReadonlyMap<string, string | null>;
  /** env_file names, as written (the config JSON has merged them into `environment` already). */
  readonly envFiles: readonly string[];
  readonly restart: string | undefined;
  /** Volume sources (named volumes and host paths) and targets, as `source:target`. */
  readonly volumeMounts: readonly string[];
  readonly usesExtends: boolean;
}

export interface ComposeModel {
  /** In the model's own order (the config JSON sorts services by name; a file keeps its order). */
  readonly services: readonly ServiceModel[];
  readonly volumeNames: readonly string[];
  readonly usesInclude: boolean;
}

/** The input is not a Compose model (no `services` map, or a service that is not a map). */
export class ComposeModelError extends Error {
  override readonly name = 'ComposeModelError';
}

type Json = Record<string, unknown>;
const isMap = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Reads a parsed config JSON or compose file. Throws ComposeModelError when it is neither. */
export function normalizeModel(raw: unknown): ComposeModel {
  if (!isMap(raw) || !isMap(raw.services)) throw new ComposeModelError('no `services:` map: not a Compose model');
  const services = Object.entries(raw.services).map(([name, service]) => {
    if (!isMap(service)) throw new ComposeModelError(`service ${name} is not a map`);
    return normalizeService(name, service);
  });
  return {
    services,
    volumeNames: isMap(raw.volumes) ? Object.keys(raw.volumes) : [],
    usesInclude: raw.include !== undefined,
  };
}

function normalizeService(name: string, service: Json): ServiceModel {
  return {
    name,
    image: typeof service.image === 'string' ? service.image : undefined,
    command: argv(service.command),
    entrypoint: argv(service.entrypoint),
    environment: environment(service.environment),
    envFiles: envFiles(service.env_file),
    restart: typeof service.restart === 'string' ? service.restart : undefined,
    volumeMounts: volumeMounts(service.volumes),
    usesExtends: service.extends !== undefined,
  };
}

function argv(value: unknown): readonly string[] | undefined {
  if (typeof value === 'string') return splitCommand(value);
  if (Array.isArray(value)) return value.map(String);
  return undefined;
}

function environment(value: unknown): ReadonlyMap<string, string | null> {
  const variables = new Map<string, string | null>();
  if (Array.isArray(value)) {
    for (const item of value.map(String)) {
      const eq = item.indexOf('=');
      if (eq < 0) variables.set(item, null);
      else variables.set(item.slice(0, eq), item.slice(eq + 1));
    }
  } else if (isMap(value)) {
    for (const [key, item] of Object.entries(value)) variables.set(key, item === null || item === undefined ? null : String(item));
  }
  return variables;
}

function envFiles(value: unknown): readonly string[] {
  const items = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  return items.map((item) => (isMap(item) ? String(item.path) : String(item)));
}

function volumeMounts(value: unknown): readonly string[] {
  if (!Array.isArray(value)) return [];
  return value.map((item) => (isMap(item) ? `${String(item.source ?? '')}:${String(item.target ?? '')}` : String(item)));
}

/**
 * Splits a string command the way Compose does (shell words: blanks separate, '...' is literal,
 * "..." allows \" \\ \$ \` escapes, a backslash outside quotes escapes the next character); no
 * expansion of any kind. Compose's own `$$` escaping is left as it is.
 */
export function splitCommand(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new ComposeModelError("a command has an unterminated '");
      word += text.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\' && '"\\$`'.includes(text[i + 1] ?? '')) i++;
        word += text[i];
      }
      if (i >= text.length) throw new ComposeModelError('a command has an unterminated "');
    } else if (c === '\\' && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}
