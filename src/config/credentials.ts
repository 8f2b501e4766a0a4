/**
 * Reading a variable's `_FILE` form (Compose and Kubernetes secrets), in one place: `loadConfig`
 * reads every such file at start, and the Infisical login reads the credential files again at
 * every login (`readCredentials`), so a rotated client secret is used without a restart. Both trim
 * the same way and report the same failures; a message names the variable and the path, never the
 * file's content.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { Config, VariableName } from './schema.js';

export type ReadTextFile = (path: string) => string;

export const readUtf8: ReadTextFile = (path) => readFileSync(path, 'utf8');

/** The text of a `_FILE` variable's file, or the problem (one line, `NAME_FILE: … — fix`) that kept it from being read. */
export type FileText = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly problem: string };

/**
 * Reads the file named by `<name>_FILE`. Surrounding whitespace is dropped: a trailing newline from
 * `echo` or an editor is never part of a credential (the variables' schemas trim the same way). An
 * empty file is a problem, not an unset variable: it is a mount gone wrong, and treating it as
 * unset would, for example, silently turn the webhook off.
 */
export function readVariableFile(name: VariableName, path: string, readTextFile: ReadTextFile = readUtf8): FileText {
  let text: string;
  try {
    text = readTextFile(path).trim();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    return { ok: false, problem: `${name}_FILE: cannot read ${path} (${reason}) — mount the file and make it readable by the sidecar user (uid ${process.getuid?.() ?? '?'})` };
  }
  if (text === '') return { ok: false, problem: `${name}_FILE: ${path} is empty — write the value into the file` };
  return { ok: true, text };
}

/** Where the login credentials come from: the values read at start, and the files to read them from again (undefined = given directly). */
export type CredentialSource = Pick<Config, 'clientId' | 'clientIdFile' | 'clientSecret' | 'clientSecretFile'>;

export interface Credentials {
  readonly clientId: string;
  readonly clientSecret: string;
}

/**
 * The credentials for a login: a value given directly as is, a file read now. Throws a ConfigError
 * with code SIDECAR_CONFIG_FILE_UNREADABLE when a file cannot be read or is empty, rather than
 * falling back to the value read at start (which may be the very secret that was rotated out).
 */
export function readCredentials(source: CredentialSource, readTextFile: ReadTextFile = readUtf8): Credentials {
  const read = (name: VariableName, file: string | undefined, startValue: string): string => {
    if (file === undefined) return startValue;
    const result = readVariableFile(name, file, readTextFile);
    if (!result.ok) throw new ConfigError([result.problem], 'SIDECAR_CONFIG_FILE_UNREADABLE');
    return result.text;
  };
  return {
    clientId: read('INFISICAL_UNIVERSAL_AUTH_CLIENT_ID', source.clientIdFile, source.clientId),
    clientSecret: read('INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET', source.clientSecretFile, source.clientSecret),
  };
}
