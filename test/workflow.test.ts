/**
 * .github/workflows/release.yml, checked without GitHub: against the GitHub workflow JSON schema (SchemaStore's
 * github-workflow.json, compiled into @action-validator/core), and for what the release promises:
 * a version tag builds linux/amd64 and linux/arm64, tests and smokes each, pushes X.Y.Z, X.Y and latest to
 * ghcr.io/<owner>/infisical-sidecar with SBOM and provenance, and signs. The schema proves the file's shape,
 * not that the jobs succeed on a runner (docs/production.md says so).
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { validateWorkflow } from '@action-validator/core';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = path.resolve(import.meta.dirname, '..');
const FILE = path.join(ROOT, '.github/workflows/release.yml');
const BUILD_SCRIPT = 'scripts/docker/build.sh';
const PLATFORMS = ['linux/amd64', 'linux/arm64'];

type Obj = Record<string, any>;
type Step = { name?: string; id?: string; uses?: string; run?: string; with?: Obj; env?: Obj };

const source = readFileSync(FILE, 'utf8');
const workflow = parse(source) as Obj;
const steps = (job: string): Step[] => workflow.jobs[job].steps;
const stepUsing = (job: string, action: string): Step => {
  const found = steps(job).filter((s) => s.uses?.startsWith(`${action}@`));
  expect(found, `${job}: one step using ${action}`).toHaveLength(1);
  return found[0]!;
};
const runs = (job: string): string => steps(job).map((s) => s.run ?? '').join('\n');

describe('release workflow: the GitHub workflow schema', () => {
  it('release.yml passes the schema', () => {
    expect(validateWorkflow(source).errors).toEqual([]);
  });

  it('the validator is live: it rejects the same file with a misspelt key', () => {
    const broken = source.replace('runs-on: ubuntu-24.04\n    timeout-minutes: 90', 'runs_on: ubuntu-24.04\n    timeout-minutes: 90');
    expect(broken).not.toBe(source);
    expect(validateWorkflow(broken).errors.length).toBeGreaterThan(0);
  });

  it('every action is pinned to a major version at least', () => {
    const uses = Object.keys(workflow.jobs).flatMap((job) => steps(job).flatMap((s) => (s.uses ? [s.uses] : [])));
    expect(uses.length).toBeGreaterThan(0);
    for (const action of uses) expect(action, action).toMatch(/^[\w.-]+\/[\w.-]+@(v\d+|[0-9a-f]{40})$/);
  });
});

describe('release workflow: what a release does', () => {
  it('runs on a version tag vX.Y.Z only, that must equal package.json version', () => {
    expect(workflow.on).toEqual({ push: { tags: ['v*.*.*'] } });
    expect(workflow.permissions).toEqual({ contents: 'read' });
    expect(runs('test')).toContain('"${GITHUB_REF_NAME#v}" = "$version"');
  });

  it('tests and smokes each platform under QEMU, building with the script the e2e runs', () => {
    const matrix = workflow.jobs.test.strategy.matrix.include as Obj[];
    expect(matrix.map((m) => m.platform)).toEqual(PLATFORMS);
    stepUsing('test', 'docker/setup-qemu-action');
    stepUsing('test', 'docker/setup-buildx-action');
    const script = runs('test');
    expect(script).toContain('--platform "${{ matrix.platform }}"');
    expect(script).toMatch(/npm test/);
    expect(script).toMatch(new RegExp(`^${BUILD_SCRIPT} --platform`, 'm'));
    expect(steps('test').find((s) => s.run?.startsWith(BUILD_SCRIPT))?.env?.DOCKER_BUILD).toBe('docker buildx build');
    expect(script).toMatch(/"\$IMAGE" help/);
    expect(script).toMatch(/node \/app\/main\.js healthcheck/);
    // the e2e builds with the same script, both ways
    const e2e = readFileSync(path.join(ROOT, 'test/e2e/build-both.sh'), 'utf8');
    expect(e2e).toContain(BUILD_SCRIPT);
    expect(() => accessSync(path.join(ROOT, BUILD_SCRIPT), constants.X_OK)).not.toThrow();
  });

  it('publishes both platforms to ghcr.io/<owner>/infisical-sidecar as X.Y.Z, X.Y and latest, with SBOM and provenance', () => {
    expect(workflow.jobs.publish.needs).toBe('test');
    const meta = stepUsing('publish', 'docker/metadata-action');
    expect(meta.with!.images).toBe('ghcr.io/${{ github.repository_owner }}/infisical-sidecar');
    expect(meta.with!.tags.trim().split('\n')).toEqual(['type=semver,pattern={{version}}', 'type=semver,pattern={{major}}.{{minor}}']);
    expect(meta.with!.flavor).toBe('latest=auto');
    const login = stepUsing('publish', 'docker/login-action');
    expect(login.with!.registry).toBe('ghcr.io');
    const push = stepUsing('publish', 'docker/build-push-action');
    expect(push.with!.platforms).toBe(PLATFORMS.join(','));
    expect(push.with!.push).toBe(true);
    expect(push.with!.sbom).toBe(true);
    expect(push.with!.provenance).toBe('mode=max');
    expect(push.with!.tags).toBe('${{ steps.meta.outputs.tags }}');
    // the same build args as scripts/docker/build.sh, from the script itself
    expect(push.with!['build-args']).toBe('${{ steps.args.outputs.list }}');
    expect(steps('publish').find((s) => s.id === 'args')?.run).toContain(`${BUILD_SCRIPT} --print-build-args`);
    expect(workflow.jobs.publish.permissions).toEqual({ contents: 'read', packages: 'write', 'id-token': 'write' });
  });

  it('signs the pushed digest with cosign, keyless', () => {
    stepUsing('publish', 'sigstore/cosign-installer');
    const sign = steps('publish').find((s) => s.run?.includes('cosign sign'))!;
    expect(sign.run).toContain('cosign sign --yes "${image}@${DIGEST}"');
    expect(sign.env!.DIGEST).toBe('${{ steps.push.outputs.digest }}');
    expect(sign.run).not.toMatch(/--key\b/);
  });
});
