/**
 * In-memory projects, environments, folders, secrets and imports, plus the read-side logic of
 * Infisical's list endpoints: recursive listing, import resolution and `${…}` reference expansion.
 * HTTP concerns (query parsing, errors, auth) live in server.ts.
 */
import { randomUUID } from 'node:crypto';
import type { FakeSeed } from './seed.js';

export interface SecretRecord {
  id: string;
  key: string;
  value: string;
  comment: string;
  skipMultilineEncoding: boolean;
  version: number;
  createdAt: string;
  updatedAt: string;
}

interface Folder {
  id: string;
  path: string;
  secrets: Map<string, SecretRecord>;
  imports: Array<{ environment: string; path: string }>;
}

interface Environment {
  slug: string;
  name: string;
  folders: Map<string, Folder>;
}

export interface Project {
  id: string;
  slug: string;
  name: string;
  environments: Map<string, Environment>;
}

export interface SetSecretOptions {
  /** Defaults to the first project. */
  projectId?: string;
  comment?: string;
  skipMultilineEncoding?: boolean;
}

/** What the server puts in `secrets[]`; key order follows the real serializer's schema. */
export interface SecretJson {
  id: string;
  _id: string;
  workspace: string;
  environment: string;
  version: number;
  type: 'shared';
  secretKey: string;
  secretValue: string;
  secretComment: string;
  secretReminderNote: null;
  secretReminderRepeatDays: null;
  skipMultilineEncoding: boolean;
  createdAt: string;
  updatedAt: string;
  isRotatedSecret: false;
  rotationId: null;
  secretPath: string;
  secretValueHidden: boolean;
  secretMetadata: never[];
  tags: never[];
}

/** `imports[].secrets[]` omits dates, path and tags, and leaves `workspace` empty (kept for old SDKs). */
export interface ImportedSecretJson {
  id: string;
  _id: string;
  workspace: string;
  environment: string;
  version: number;
  type: 'shared';
  secretKey: string;
  secretValue: string;
  secretComment: string;
  skipMultilineEncoding: boolean;
  isRotatedSecret: false;
  rotationId: null;
  secretValueHidden: boolean;
  secretMetadata: never[];
}

export interface ImportJson {
  secretPath: string;
  environment: string;
  folderId: string;
  secrets: ImportedSecretJson[];
}

export interface ListOptions {
  environment: string;
  secretPath: string;
  recursive: boolean;
  includeImports: boolean;
  expand: boolean;
  viewSecretValue: boolean;
  tagSlugs: string[];
}

export type ListResult =
  | { ok: true; secrets: SecretJson[]; imports: ImportJson[] }
  | { ok: false; reason: 'folder' | 'environment' };

const HIDDEN_VALUE = '<hidden-by-infisical>';
// Same character class as the server's INTERPOLATION_SYNTAX_REG (`-` after a range is a literal).
const REFERENCE = /\$\{([a-zA-Z0-9\-_.]+)\}/g;
const MAX_REFERENCE_DEPTH = 10;
const MAX_IMPORT_DEPTH = 10;
const MAX_RECURSIVE_DEPTH = 20;

/** Infisical trims the path and drops the trailing slash; we also collapse empty segments. */
export function normalizePath(raw: string): string {
  const segments = raw.trim().split('/').filter((s) => s.length > 0);
  return `/${segments.join('/')}`;
}

/** The server's SecretNameSchema: trimmed, non-empty, no `/` or `:`. Everything else is allowed. */
export function validateKey(key: string): string {
  const trimmed = key.trim();
  if (trimmed.length === 0) throw new Error('secret key must not be empty');
  if (trimmed.includes('/') || trimmed.includes(':')) throw new Error(`secret key must not contain "/" or ":": ${key}`);
  return trimmed;
}

export class Store {
  readonly projects = new Map<string, Project>();

  constructor(seed: FakeSeed) {
    for (const p of seed.projects) {
      const project: Project = { id: p.id, slug: p.slug, name: p.name ?? p.slug, environments: new Map() };
      this.projects.set(p.id, project);
      for (const [envSlug, env] of Object.entries(p.environments)) {
        this.ensureEnv(project, envSlug, env.name);
        for (const [path, folder] of Object.entries(env.folders)) {
          const f = this.addFolder(envSlug, path, p.id);
          for (const [key, value] of Object.entries(folder.secrets)) this.setSecret(envSlug, path, key, value, { projectId: p.id });
          for (const imp of folder.imports ?? []) f.imports.push({ environment: imp.environment, path: normalizePath(imp.path) });
        }
      }
    }
  }

  project(projectId?: string): Project {
    const project = projectId === undefined ? this.projects.values().next().value : this.projects.get(projectId);
    if (project === undefined) throw new Error(projectId === undefined ? 'the seed has no project' : `unknown project ${projectId}`);
    return project;
  }

  projectBySlug(slug: string): Project | undefined {
    for (const p of this.projects.values()) if (p.slug === slug) return p;
    return undefined;
  }

  /** Creates the folder, its parents and the environment as needed (test helper convenience). */
  addFolder(env: string, path: string, projectId?: string): Folder {
    const environment = this.ensureEnv(this.project(projectId), env);
    const normalized = normalizePath(path);
    const segments = normalized.split('/').filter((s) => s.length > 0);
    let folder = this.ensureFolder(environment, '/');
    for (let i = 1; i <= segments.length; i++) folder = this.ensureFolder(environment, `/${segments.slice(0, i).join('/')}`);
    return folder;
  }

  /** Removes the folder and everything below it. The root folder of an environment cannot be removed. */
  removeFolder(env: string, path: string, projectId?: string): boolean {
    const environment = this.project(projectId).environments.get(env);
    const normalized = normalizePath(path);
    if (normalized === '/') throw new Error('the root folder cannot be removed');
    if (environment === undefined || !environment.folders.has(normalized)) return false;
    for (const p of [...environment.folders.keys()]) {
      if (p === normalized || p.startsWith(`${normalized}/`)) environment.folders.delete(p);
    }
    return true;
  }

  addImport(env: string, path: string, fromEnv: string, fromPath: string, projectId?: string): void {
    this.addFolder(env, path, projectId).imports.push({ environment: fromEnv, path: normalizePath(fromPath) });
  }

  /** Creates the secret (version 1) or rotates it (version + 1, new updatedAt). Values are stored byte-exact. */
  setSecret(env: string, path: string, key: string, value: string, opts: SetSecretOptions = {}): SecretRecord {
    const validKey = validateKey(key);
    const folder = this.addFolder(env, path, opts.projectId);
    const now = new Date().toISOString();
    const existing = folder.secrets.get(validKey);
    if (existing !== undefined) {
      existing.value = value;
      existing.version += 1;
      existing.updatedAt = now;
      if (opts.comment !== undefined) existing.comment = opts.comment;
      if (opts.skipMultilineEncoding !== undefined) existing.skipMultilineEncoding = opts.skipMultilineEncoding;
      return existing;
    }
    const record: SecretRecord = {
      id: randomUUID(),
      key: validKey,
      value,
      comment: opts.comment ?? '',
      skipMultilineEncoding: opts.skipMultilineEncoding ?? false,
      version: 1,
      createdAt: now,
      updatedAt: now,
    };
    folder.secrets.set(validKey, record);
    return record;
  }

  deleteSecret(env: string, path: string, key: string, projectId?: string): boolean {
    const folder = this.project(projectId).environments.get(env)?.folders.get(normalizePath(path));
    return folder?.secrets.delete(key.trim()) ?? false;
  }

  list(project: Project, opts: ListOptions): ListResult {
    const environment = project.environments.get(opts.environment);
    if (environment === undefined) return { ok: false, reason: opts.recursive ? 'environment' : 'folder' };
    const root = environment.folders.get(opts.secretPath);
    if (root === undefined) return { ok: false, reason: 'folder' };

    const folders = opts.recursive ? this.subtree(environment, root.path) : [root];
    const secrets: SecretJson[] = [];
    for (const folder of folders) {
      for (const s of folder.secrets.values()) {
        // No secret carries tags here, so any tag filter leaves nothing, as it would on the server.
        if (opts.tagSlugs.length > 0) continue;
        const value = this.present(project, environment.slug, folder.path, s, opts);
        secrets.push({
          id: s.id,
          _id: s.id,
          workspace: project.id,
          environment: environment.slug,
          version: s.version,
          type: 'shared',
          secretKey: s.key,
          secretValue: value,
          secretComment: s.comment,
          secretReminderNote: null,
          secretReminderRepeatDays: null,
          skipMultilineEncoding: s.skipMultilineEncoding,
          createdAt: s.createdAt,
          updatedAt: s.updatedAt,
          isRotatedSecret: false,
          rotationId: null,
          secretPath: folder.path,
          secretValueHidden: !opts.viewSecretValue,
          secretMetadata: [],
          tags: [],
        });
      }
    }
    // The DAL orders by key; a stable sort keeps shallower folders first for equal keys when recursive.
    secrets.sort((a, b) => compareKeys(a.secretKey, b.secretKey));
    const imports = opts.includeImports ? this.resolveImports(project, root, opts) : [];
    return { ok: true, secrets, imports };
  }

  private subtree(environment: Environment, rootPath: string): Folder[] {
    const rootDepth = depthOf(rootPath);
    const prefix = rootPath === '/' ? '/' : `${rootPath}/`;
    return [...environment.folders.values()]
      .filter((f) => f.path === rootPath || (f.path.startsWith(prefix) && depthOf(f.path) - rootDepth <= MAX_RECURSIVE_DEPTH))
      .sort((a, b) => depthOf(a.path) - depthOf(b.path) || compareKeys(a.path, b.path));
  }

  /**
   * Mirrors fnSecretsV2FromImports: each direct import becomes one entry (position order); secrets of
   * deeper imports are appended to the entry of the import that led to them. A folder already visited
   * (env:path) is skipped, which breaks import cycles; missing import targets are skipped silently.
   */
  private resolveImports(project: Project, folder: Folder, opts: ListOptions): ImportJson[] {
    const seen = new Set<string>();
    const result: ImportJson[] = [];
    const collect = (imports: Folder['imports'], depth: number, into: ImportJson | undefined): void => {
      if (depth > MAX_IMPORT_DEPTH) return;
      for (const imp of imports) {
        const uniq = `${imp.environment}:${imp.path}`;
        if (seen.has(uniq)) continue;
        seen.add(uniq);
        const target = project.environments.get(imp.environment)?.folders.get(imp.path);
        if (target === undefined) continue;
        const secrets = [...target.secrets.values()]
          .sort((a, b) => compareKeys(a.key, b.key))
          .map((s): ImportedSecretJson => ({
            id: s.id,
            _id: s.id,
            workspace: '',
            environment: imp.environment,
            version: s.version,
            type: 'shared',
            secretKey: s.key,
            secretValue: this.present(project, imp.environment, imp.path, s, opts),
            secretComment: s.comment,
            skipMultilineEncoding: s.skipMultilineEncoding,
            isRotatedSecret: false,
            rotationId: null,
            secretValueHidden: !opts.viewSecretValue,
            secretMetadata: [],
          }));
        let entry = into;
        if (entry === undefined) {
          entry = { secretPath: imp.path, environment: imp.environment, folderId: target.id, secrets };
          result.push(entry);
        } else {
          entry.secrets.push(...secrets);
        }
        collect(target.imports, depth + 1, entry);
      }
    };
    collect(folder.imports, 0, undefined);
    return result;
  }

  /** The value as the list endpoint shows it: hidden, expanded, or raw. */
  private present(project: Project, env: string, path: string, s: SecretRecord, opts: ListOptions): string {
    if (!opts.viewSecretValue) return HIDDEN_VALUE;
    if (!opts.expand) return s.value;
    const expanded = this.expand(project, env, path, s.value, [`${env}:${path}:${s.key}`], 0);
    // formatMultiValueEnv: applied to expanded values of secrets flagged skipMultilineEncoding.
    if (s.skipMultilineEncoding && expanded.includes('\n')) return `"${expanded.replaceAll('\n', '\\n')}"`;
    return expanded;
  }

  /**
   * `${KEY}` resolves in the env/folder of the secret holding the reference; `${env.a.b.KEY}` in env
   * `env`, folder `/a/b`. Missing or empty targets stay literal; a reference already on the current
   * chain (a cycle) stays literal; nesting stops after 10 levels.
   */
  private expand(project: Project, env: string, path: string, value: string, chain: string[], depth: number): string {
    // Mirrors `if (depth > MAX_SECRET_REFERENCE_DEPTH) continue` in secret-reference-fns.
    if (depth > MAX_REFERENCE_DEPTH) return value;
    return value.replace(REFERENCE, (literal: string, inner: string) => {
      const parts = inner.trim().split('.');
      const key = parts[parts.length - 1] ?? '';
      const refEnv = parts.length === 1 ? env : (parts[0] ?? '');
      const refPath = parts.length === 1 ? path : normalizePath(parts.slice(1, -1).join('/'));
      const id = `${refEnv}:${refPath}:${key}`;
      if (chain.includes(id)) return literal;
      const target = project.environments.get(refEnv)?.folders.get(refPath)?.secrets.get(key);
      if (target === undefined || target.value === '') return literal;
      return this.expand(project, refEnv, refPath, target.value, [...chain, id], depth + 1);
    });
  }

  private ensureEnv(project: Project, slug: string, name?: string): Environment {
    let env = project.environments.get(slug);
    if (env === undefined) {
      env = { slug, name: name ?? slug, folders: new Map() };
      project.environments.set(slug, env);
      this.ensureFolder(env, '/');
    }
    return env;
  }

  private ensureFolder(env: Environment, path: string): Folder {
    let folder = env.folders.get(path);
    if (folder === undefined) {
      folder = { id: randomUUID(), path, secrets: new Map(), imports: [] };
      env.folders.set(path, folder);
    }
    return folder;
  }
}

function depthOf(path: string): number {
  return path === '/' ? 0 : path.split('/').length - 1;
}

/** Code-unit order: deterministic. The real order depends on the database collation (UNCERTAIN). */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
