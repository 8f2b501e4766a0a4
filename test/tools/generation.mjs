/**
 * The content format of the torn-read and crash tests: every file of generation G says which
 * generation and file it belongs to, how long its body is, and ends with `end=G`. A torn file (cut
 * short, or two writes mixed) fails `parseFile`; files of one set carry the same G, so a mixed set
 * shows as different generations. Plain JS so child processes run it without a TypeScript loader.
 */

/** The set written at every generation: two top-level files and a sub-directory, like the real outputs. */
export const NAMES = Object.freeze(['secrets.env', 'secrets.json', 'keys/A']);

function hash(text) {
  let h = 0;
  for (const char of text) h = (h * 31 + char.charCodeAt(0)) >>> 0;
  return h;
}

/** Body length varies with the generation (64 B … ~6 KiB), so a torn or stale file has the wrong length. */
export function bodyLength(gen, name) {
  return 64 + ((gen * 7919 + hash(name)) % 6000);
}

export function fileContent(gen, name) {
  const length = bodyLength(gen, name);
  const fill = String.fromCharCode(97 + (gen % 26));
  return Buffer.from(`gen=${gen} file=${name} len=${length}\n${fill.repeat(length)}\nend=${gen}\n`);
}

/** The whole set of generation `gen`, as `AtomicDirWriter.write` takes it. */
export function makeSet(gen, names = NAMES) {
  return names.map((name) => ({ path: name, content: fileContent(gen, name) }));
}

/** Returns the generation of a well-formed file of `name`, or undefined when it is torn or foreign. */
export function parseFile(buffer, name) {
  const text = buffer.toString('latin1');
  const match = /^gen=(\d+) file=([^ ]+) len=(\d+)\n/.exec(text);
  if (!match || match[2] !== name) return undefined;
  const gen = Number(match[1]);
  const expected = fileContent(gen, name);
  return expected.equals(buffer) ? gen : undefined;
}
