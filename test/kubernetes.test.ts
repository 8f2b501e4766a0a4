/**
 * deploy/kubernetes: the structure that makes the manifests safe and working, checked without a cluster.
 *
 * - sidecar.yaml: the image as a native sidecar (init container, restartPolicy Always) with startup and
 *   readiness probes on /healthz at the port it really listens on, liveness on /livez, a memory-backed
 *   emptyDir mounted read-write by the sidecar and read-only by GlitchTip, credentials from a Secret through
 *   the _FILE forms, and a non-root, read-only-root securityContext.
 * - init-once.yaml: the image in `once` mode as a plain init container before a one-shot GlitchTip pod.
 * - In both, the sidecar's environment goes through the real config loader (every variable known and valid),
 *   and the app container sources secrets.env from the directory the sidecar writes.
 * - Every object, and the Helm recipe's patch applied to a fixture of the GlitchTip chart's Deployments, passes
 *   the Kubernetes OpenAPI schema as kubernetes-models 4.5 ships it (Kubernetes 1.33: it has Lifecycle.stopSignal,
 *   new in 1.33, and not Container.restartPolicyRules, new in 1.34), with no field the schema does not know
 *   (as `kubectl apply` with strict field validation) and none newer than 1.29, the first native-sidecar release.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';

const DIR = path.resolve(import.meta.dirname, '../deploy/kubernetes');
const SIDECAR_IMAGE = /^infisical-sidecar(:|@)/;

type Obj = Record<string, any>;

function manifests(file: string, dir = DIR): Obj[] {
  // YAML 1.1, as Kubernetes reads it (sigs.k8s.io/yaml): `0440` is octal there, decimal in YAML 1.2.
  const docs = parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'), { version: '1.1' });
  for (const doc of docs) expect(doc.errors, `${file}: YAML errors`).toEqual([]);
  return docs.map((doc) => doc.toJS() as Obj).filter(Boolean);
}

function one(objects: Obj[], apiVersion: string, kind: string): Obj {
  const found = objects.filter((o) => o.apiVersion === apiVersion && o.kind === kind);
  expect(found, `one ${apiVersion} ${kind}`).toHaveLength(1);
  return found[0]!;
}

/** Runs the container's environment through the sidecar's own loader, with the _FILE paths made real. */
function configOf(container: Obj): Config {
  const work = mkdtempSync(path.join(tmpdir(), 'k8s-'));
  try {
    const env: Record<string, string> = {};
    for (const entry of container.env as Obj[]) {
      expect(entry.valueFrom, `${entry.name}: literal values only in the example`).toBeUndefined();
      env[entry.name] = String(entry.value);
      if (entry.name.endsWith('_FILE')) {
        const file = path.join(work, path.basename(entry.value));
        writeFileSync(file, `dummy-${path.basename(entry.value)}\n`);
        env[entry.name] = file;
      }
    }
    return loadConfig(env, (p) => readFileSync(p, 'utf8'));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function envValue(container: Obj, name: string): string | undefined {
  return (container.env as Obj[]).find((e) => e.name === name)?.value;
}

function expectHardened(container: Obj, where: string): void {
  const sc = container.securityContext;
  expect(sc, where).toBeDefined();
  expect(sc.runAsNonRoot, where).toBe(true);
  expect(sc.runAsUser, where).toBe(65532);
  expect(sc.readOnlyRootFilesystem, where).toBe(true);
  expect(sc.allowPrivilegeEscalation, where).toBe(false);
  expect(sc.capabilities?.drop, where).toEqual(['ALL']);
}

/** The pod-level facts both manifests share: memory emptyDir, Secret-backed credential files, mounts. */
function expectSecretsPlumbing(pod: Obj, sidecar: Obj, config: Config, apps: Obj[], where: string): void {
  expect(pod.automountServiceAccountToken, where).toBe(false);
  expect(pod.securityContext?.runAsNonRoot, where).toBe(true);
  expect(pod.securityContext?.fsGroup, `${where}: GlitchTip's group`).toBe(5000);
  expect(sidecar.securityContext.runAsGroup, `${where}: files readable by GlitchTip's group`).toBe(5000);

  // The output directory: a memory-backed emptyDir, read-write for the sidecar, read-only for the app.
  const outputMount = (sidecar.volumeMounts as Obj[]).find((m) => m.mountPath === config.outputDir);
  expect(outputMount, `${where}: the sidecar mounts SIDECAR_OUTPUT_DIR`).toBeDefined();
  expect(outputMount!.readOnly ?? false, where).toBe(false);
  const volume = (pod.volumes as Obj[]).find((v) => v.name === outputMount!.name);
  expect(volume?.emptyDir?.medium, `${where}: tmpfs, not the node's disk`).toBe('Memory');
  expect(volume?.emptyDir?.sizeLimit, where).toBeTruthy();
  for (const app of apps) {
    const mount = (app.volumeMounts as Obj[]).find((m) => m.name === outputMount!.name);
    expect(mount, `${where}: ${app.name} mounts the secrets`).toBeDefined();
    expect(mount!.readOnly, `${where}: ${app.name} mounts them read-only`).toBe(true);
    expect(mount!.mountPath, where).toBe(config.outputDir);
    // The wrapper sources the env file the sidecar writes, then execs the restated image command.
    const [shell, flag, script] = app.command as string[];
    expect([shell, flag], where).toEqual(['/bin/sh', '-c']);
    expect(script, where).toMatch(new RegExp(`${config.outputDir}/secrets\\.env`));
    expect(script, where).toMatch(/set -a\n\s*\. "?[^\n]+"?\n\s*set \+a\n\s*exec "\$@"/);
    expect(app.args?.length, `${where}: ${app.name} restates the image command`).toBeGreaterThan(0);
    expect(app.securityContext?.runAsNonRoot, where).toBe(true);
    expect(app.securityContext?.allowPrivilegeEscalation, where).toBe(false);
    const env = (app.env ?? []) as Obj[];
    expect(env.map((e) => e.name), `${where}: no secret in the app's env`).not.toEqual(expect.arrayContaining(['SECRET_KEY', 'DATABASE_URL', 'EMAIL_URL', 'POSTGRES_PASSWORD']));
  }

  // Credentials: the _FILE forms, pointing into a Secret volume mounted read-only; never in env.
  expect(envValue(sidecar, 'INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET'), where).toBeUndefined();
  expect(envValue(sidecar, 'INFISICAL_UNIVERSAL_AUTH_CLIENT_ID'), where).toBeUndefined();
  for (const name of ['INFISICAL_UNIVERSAL_AUTH_CLIENT_ID_FILE', 'INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET_FILE']) {
    const file = envValue(sidecar, name)!;
    expect(file, `${where}: ${name}`).toBeTruthy();
    const mount = (sidecar.volumeMounts as Obj[]).find((m) => file.startsWith(`${m.mountPath}/`));
    expect(mount, `${where}: ${name} is inside a mount`).toBeDefined();
    expect(mount!.readOnly, where).toBe(true);
    const secretVolume = (pod.volumes as Obj[]).find((v) => v.name === mount!.name);
    expect(secretVolume?.secret?.secretName, `${where}: ${name} comes from a Secret`).toBe('glitchtip-infisical-credentials');
    const item = (secretVolume!.secret.items as Obj[]).find((i) => i.path === path.relative(mount!.mountPath, file));
    expect(item, `${where}: the Secret maps a key to ${file}`).toBeDefined();
    expect(secretVolume!.secret.defaultMode, `${where}: credentials readable by owner and group (fsGroup) only`).toBe(0o440);
  }
  expect(config.clientSecretFile, where).toBeDefined();
  expectHardened(sidecar, `${where}: sidecar`);
  expect(sidecar.image, where).toMatch(SIDECAR_IMAGE);
}

describe('deploy/kubernetes/sidecar.yaml (native sidecar)', () => {
  const deployment = one(manifests('sidecar.yaml'), 'apps/v1', 'Deployment');
  const pod = deployment.spec.template.spec as Obj;
  const sidecars = (pod.initContainers as Obj[]).filter((c) => SIDECAR_IMAGE.test(c.image));
  const sidecar = sidecars[0]!;
  const apps = pod.containers as Obj[];
  const config = configOf(sidecar);

  it('runs the image as a native sidecar: an init container with restartPolicy Always, in run mode', () => {
    expect(sidecars).toHaveLength(1);
    expect(sidecar.restartPolicy).toBe('Always');
    expect(sidecar.args ?? ['run']).toEqual(['run']);
    expect(apps.map((c) => c.image)).toEqual(['glitchtip/glitchtip:6']);
    expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
  });

  it('probes /healthz for startup and readiness at the port the sidecar listens on, and /livez for liveness', () => {
    const port = (name: unknown) => (typeof name === 'number' ? name : (sidecar.ports as Obj[]).find((p) => p.name === name)?.containerPort);
    for (const probe of ['startupProbe', 'readinessProbe'] as const) {
      expect(sidecar[probe]?.httpGet?.path, probe).toBe('/healthz');
      expect(port(sidecar[probe].httpGet.port), probe).toBe(config.healthPort);
    }
    // The startup probe gates GlitchTip: give the first sync time (≥ 1 minute) before the kubelet gives up.
    expect(sidecar.startupProbe.periodSeconds * sidecar.startupProbe.failureThreshold).toBeGreaterThanOrEqual(60);
    // Liveness must not follow Infisical's health, or an outage would restart the sidecar in a loop.
    expect(sidecar.livenessProbe?.httpGet?.path).toBe('/livez');
    expect(port(sidecar.livenessProbe.httpGet.port)).toBe(config.healthPort);
    expect(config.healthHost).toBe('0.0.0.0');
    expect(deployment.spec.template.metadata.annotations['prometheus.io/port']).toBe(String(config.healthPort));
    expect(deployment.spec.template.metadata.annotations['prometheus.io/path']).toBe('/metrics');
  });

  it('shares a memory-backed emptyDir read-only with GlitchTip, takes credentials from a Secret as files, runs hardened', () => {
    expectSecretsPlumbing(pod, sidecar, config, apps, 'sidecar.yaml');
  });

  it('configures a GlitchTip sidecar the loader accepts', () => {
    expect(config.secretPaths).toEqual(['/glitchtip/database', '/glitchtip/application']);
    expect(config.requiredKeys).toEqual(['POSTGRES_PASSWORD', 'SECRET_KEY', 'EMAIL_URL', 'DEFAULT_FROM_EMAIL']);
    expect([...config.derived.keys()]).toEqual(['DATABASE_URL']);
    expect(config.logFormat).toBe('json');
    expect(config.maxStalenessMs).toBeGreaterThan(config.refreshIntervalMs);
    expect(config.siteUrl).toMatch(/^https:\/\//);
  });
});

describe('deploy/kubernetes/init-once.yaml (once, as a plain init container)', () => {
  const job = one(manifests('init-once.yaml'), 'batch/v1', 'Job');
  const pod = job.spec.template.spec as Obj;
  const sidecar = (pod.initContainers as Obj[]).find((c) => SIDECAR_IMAGE.test(c.image))!;
  const apps = pod.containers as Obj[];
  const config = configOf(sidecar);

  it('runs `once` as a plain init container (no restartPolicy, no probes) before a one-shot pod', () => {
    expect(sidecar).toBeDefined();
    expect(sidecar.args).toEqual(['once']);
    expect(sidecar.restartPolicy).toBeUndefined();
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) expect(sidecar[probe], probe).toBeUndefined();
    expect(['Never', 'OnFailure']).toContain(pod.restartPolicy);
    expect(job.spec.backoffLimit).toBeGreaterThanOrEqual(1);
    // The deadline of `once` must end before the Job's own.
    expect(config.onceDeadlineMs).toBeLessThan(job.spec.activeDeadlineSeconds * 1000);
    expect(apps.map((c) => c.args)).toEqual([['./bin/run-migrate.sh']]);
  });

  it('shares a memory-backed emptyDir read-only with GlitchTip, takes credentials from a Secret as files, runs hardened', () => {
    expectSecretsPlumbing(pod, sidecar, config, apps, 'init-once.yaml');
  });
});

describe('deploy/kubernetes/README.md', () => {
  const readme = readFileSync(path.join(DIR, 'README.md'), 'utf8');
  it('creates the Secret the manifests mount, with the keys they map', () => {
    expect(readme).toContain('kubectl create secret generic glitchtip-infisical-credentials');
    expect(readme).toContain('--from-file=client-id=');
    expect(readme).toContain('--from-file=client-secret=');
    expect(readme).toContain('sidecar.yaml');
    expect(readme).toContain('init-once.yaml');
  });

  it('both manifests use the same sidecar image and settings for Infisical', () => {
    const a = one(manifests('sidecar.yaml'), 'apps/v1', 'Deployment').spec.template.spec.initContainers[0];
    const b = one(manifests('init-once.yaml'), 'batch/v1', 'Job').spec.template.spec.initContainers[0];
    expect(a.image).toBe(b.image);
    for (const name of ['INFISICAL_SITE_URL', 'INFISICAL_PROJECT_ID', 'INFISICAL_ENVIRONMENT', 'INFISICAL_SECRET_PATHS', 'SIDECAR_REQUIRED_KEYS', 'SIDECAR_DERIVE_DATABASE_URL', 'SIDECAR_OUTPUT_DIR']) {
      expect(envValue(a, name), name).toBe(envValue(b, name));
    }
  });
});

// ---------------------------------------------------------------- the Kubernetes schema

const VALIDATORS: Record<string, (this: unknown) => void> = {
  'apps/v1 Deployment': Deployment.prototype.validate,
  'batch/v1 Job': Job.prototype.validate,
};

/**
 * Fields these manifests could plausibly use that a 1.29 API server does not know (it would drop or reject
 * them): the version that added each. Native sidecars (initContainers[].restartPolicy) are from 1.29 itself.
 */
const NEWER_THAN_1_29: Record<string, string> = {
  appArmorProfile: '1.30',
  recursiveReadOnly: '1.30',
  managedBy: '1.30',
  successPolicy: '1.30',
  sleep: '1.30',
  supplementalGroupsPolicy: '1.31',
  stopSignal: '1.33',
  restartPolicyRules: '1.34',
  fileKeyRef: '1.34',
  hostnameOverride: '1.34',
};

/**
 * Schema errors of one object, plus the fields the schema does not know. The OpenAPI schemas allow unknown
 * properties (the API server drops them, or rejects them under strict field validation), so a misspelt
 * `readOnlyRootFilesytem` would pass the validator alone: every key the validator never read is reported.
 */
function schemaProblems(object: Obj): string[] {
  const validate = VALIDATORS[`${object.apiVersion} ${object.kind}`];
  if (!validate) return [`no schema for ${object.apiVersion} ${object.kind}`];
  const read = new Map<object, Set<PropertyKey>>();
  const listed = new Set<object>(); // maps (labels, annotations) whose keys the validator enumerated
  const proxies = new WeakMap<object, object>();
  const wrap = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    let proxy = proxies.get(value);
    if (!proxy) {
      read.set(value, new Set());
      proxy = new Proxy(value, {
        get: (target, key) => (read.get(target)!.add(key), wrap(Reflect.get(target, key))),
        ownKeys: (target) => (listed.add(target), Reflect.ownKeys(target)),
      });
      proxies.set(value, proxy);
    }
    return proxy;
  };
  const problems: string[] = [];
  try {
    validate.call(wrap(object));
  } catch (error) {
    problems.push((error as Error).message);
  }
  const walk = (value: unknown, where: string): void => {
    if (value === null || typeof value !== 'object') return;
    const isMap = Array.isArray(value) || listed.has(value);
    for (const [key, child] of Object.entries(value)) {
      if (!isMap && !read.get(value)?.has(key)) problems.push(`${where}/${key}: not in the schema`);
      if (!Array.isArray(value) && key in NEWER_THAN_1_29) problems.push(`${where}/${key}: new in Kubernetes ${NEWER_THAN_1_29[key]}`);
      walk(child, `${where}/${key}`);
    }
  };
  walk(object, '');
  if (object.spec?.template?.spec?.resources) problems.push('/spec/template/spec/resources: pod-level resources are new in 1.32');
  return problems;
}

describe('deploy/kubernetes: the Kubernetes schema (kubernetes-models, Kubernetes 1.33; fields since 1.29)', () => {
  for (const file of ['sidecar.yaml', 'init-once.yaml']) {
    it(`${file}: every object passes the schema, with no unknown or post-1.29 field`, () => {
      const objects = manifests(file);
      expect(objects.length).toBeGreaterThan(0);
      for (const object of objects) expect(schemaProblems(object), `${file}: ${object.kind} ${object.metadata?.name}`).toEqual([]);
    });
  }

  it('the check is live: a wrong type, a misspelt field and a 1.33 field are each reported', () => {
    const deployment = one(manifests('sidecar.yaml'), 'apps/v1', 'Deployment');
    const broken = structuredClone(deployment);
    broken.spec.template.spec.initContainers[0].ports[0].containerPort = '8080';
    broken.spec.template.spec.initContainers[0].securityContext.readOnlyRootFilesytem = true;
    broken.spec.template.spec.containers[0].lifecycle = { stopSignal: 'SIGTERM' };
    const problems = schemaProblems(broken).join('\n');
    expect(problems).toMatch(/containerPort must be integer/);
    expect(problems).toMatch(/securityContext\/readOnlyRootFilesytem: not in the schema/);
    expect(problems).toMatch(/lifecycle\/stopSignal: new in Kubernetes 1\.33/);
    // labels and annotations are maps: any key is fine there
    expect(schemaProblems({ ...deployment, metadata: { ...deployment.metadata, annotations: { 'any.example/key': 'x' } } })).toEqual([]);
  });
});

// ---------------------------------------------------------------- the GlitchTip Helm chart recipe

const HELM = path.join(DIR, 'helm');
const FIXTURE = path.resolve(import.meta.dirname, 'fixtures/helm');

/**
 * A strategic merge patch, as `kubectl kustomize` applies it, for what sidecar-patch.yaml uses: maps merge
 * key by key, scalars and plain lists are replaced, and the lists below merge element by element on their
 * merge key (the Kubernetes API's patchMergeKey): a new name is appended, a known one merged into.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  volumes: 'name',
  env: 'name',
  ports: 'containerPort',
  volumeMounts: 'mountPath',
};
function strategicMerge(target: unknown, patch: unknown, key?: string): unknown {
  if (Array.isArray(patch)) {
    const mergeKey = key ? MERGE_KEYS[key] : undefined;
    if (!mergeKey || !Array.isArray(target)) return structuredClone(patch);
    const merged = structuredClone(target) as Obj[];
    for (const item of patch as Obj[]) {
      const at = merged.findIndex((existing) => existing[mergeKey] === item[mergeKey]);
      if (at >= 0) merged[at] = strategicMerge(merged[at], item) as Obj;
      else merged.push(structuredClone(item));
    }
    return merged;
  }
  if (patch === null || typeof patch !== 'object' || target === null || typeof target !== 'object' || Array.isArray(target)) {
    return structuredClone(patch);
  }
  const merged: Obj = structuredClone(target);
  for (const [k, v] of Object.entries(patch)) merged[k] = k in merged ? strategicMerge(merged[k], v, k) : structuredClone(v);
  return merged;
}

/** kustomization.yaml's target: a label selector of `k=v` and `k in (a,b)` terms, as kustomize reads it. */
function selects(selector: string, labels: Record<string, string> = {}): boolean {
  return selector.split(/,(?![^(]*\))/).every((term) => {
    const set = /^\s*([\w./-]+)\s+in\s+\(([^)]*)\)\s*$/.exec(term);
    if (set) return set[2]!.split(',').map((v) => v.trim()).includes(labels[set[1]!]!);
    const [k, v] = term.split('=').map((s) => s.trim());
    return labels[k!] === v;
  });
}

describe('deploy/kubernetes/helm: the GlitchTip chart 8.x recipe (post-renderer patch on a fixture, not rendered by helm)', () => {
  const kustomization = parse(readFileSync(path.join(HELM, 'kustomization.yaml'), 'utf8')) as Obj;
  const { path: patchFile, target } = (kustomization.patches as Obj[])[0]!;
  const patch = manifests(patchFile, HELM)[0]!;
  const rendered = manifests('glitchtip-rendered.yaml', FIXTURE);
  const patched = rendered.map((o) => (o.kind === target.kind && selects(target.labelSelector, o.metadata.labels) ? strategicMerge(o, { spec: patch.spec }) : o) as Obj);
  const reference = one(manifests('sidecar.yaml'), 'apps/v1', 'Deployment').spec.template.spec as Obj;

  it('the fixture is what the chart renders from values.yaml: the volumes and mounts it passes through', () => {
    const values = manifests('values.yaml', HELM)[0]!;
    expect(rendered.map((o) => o.metadata.name)).toEqual(['glitchtip-web', 'glitchtip-worker']);
    for (const deployment of rendered) {
      const pod = deployment.spec.template.spec;
      expect(pod.volumes, deployment.metadata.name).toEqual(values.extraVolumes);
      expect(pod.containers[0].volumeMounts, deployment.metadata.name).toEqual(values.extraVolumeMounts);
      expect(pod.containers[0].securityContext).toEqual(values.securityContext);
      expect(pod.securityContext).toEqual(values.podSecurityContext);
      expect(pod.initContainers, 'the chart renders no init container').toBeUndefined();
      expect(schemaProblems(deployment), deployment.metadata.name).toEqual([]);
    }
    expect(rendered[0]!.spec.template.spec.containers[0].args).toEqual(values.web.args);
    expect(rendered[1]!.spec.template.spec.containers[0].args).toEqual(values.worker.args);
  });

  it('the patch selects web and worker, adds the native sidecar exactly as sidecar.yaml has it, and wraps GlitchTip the same way', () => {
    expect(patched.filter((o, i) => o !== rendered[i]).map((o) => o.metadata.name)).toEqual(['glitchtip-web', 'glitchtip-worker']);
    const wrapper = (reference.containers as Obj[])[0]!.command;
    for (const deployment of patched) {
      const pod = deployment.spec.template.spec as Obj;
      expect(pod.initContainers, deployment.metadata.name).toEqual(reference.initContainers);
      expect(pod.containers.map((c: Obj) => c.name)).toEqual(['glitchtip']);
      expect(pod.containers[0].command).toEqual(wrapper);
      expect(pod.containers[0].image, 'the chart keeps its image').toBe('glitchtip/glitchtip:5.1');
    }
  });

  for (const name of ['glitchtip-web', 'glitchtip-worker']) {
    it(`${name} after the patch: passes the schema, and has the plumbing sidecar.yaml has`, () => {
      const deployment = patched.find((o) => o.metadata.name === name)!;
      expect(schemaProblems(deployment)).toEqual([]);
      const pod = deployment.spec.template.spec as Obj;
      const sidecar = pod.initContainers[0] as Obj;
      expect(sidecar.restartPolicy).toBe('Always');
      expectSecretsPlumbing(pod, sidecar, configOf(sidecar), pod.containers, `helm ${name}`);
    });
  }

  it('post-render.sh runs kubectl kustomize on stdin with these files', () => {
    const script = readFileSync(path.join(HELM, 'post-render.sh'), 'utf8');
    expect(script).toContain('cat >"$work/rendered.yaml"');
    expect(script).toContain('kustomize "$work"');
    expect(kustomization.resources).toEqual(['rendered.yaml']);
  });
});
