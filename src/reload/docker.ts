/**
 * Opt-in: restart named Compose services through the Docker Engine API on a mounted socket.
 *
 * Only containers of the sidecar's own Compose project (label `com.docker.compose.project`, read
 * from the sidecar's own container) and of the listed services are touched, one at a time; the
 * next waits until the previous one is healthy again (or running, without a healthcheck).
 *
 * Mounting the socket gives the sidecar control of the whole Docker host. Narrow it with a socket
 * proxy that allows only `GET /containers/*` and `POST /containers/* /restart` (docs/rotation.md).
 */
import http from 'node:http';
import { hostname } from 'node:os';
import { sleep, systemClock, type Clock } from '../timers.js';
import type { ReloadAction } from './scheduler.js';

export interface DockerRestartOptions {
  /** `unix:///var/run/docker.sock` style path or `http://host:port` of a socket proxy. */
  readonly endpoint: string;
  readonly services: readonly string[];
  /** How long to wait for each service to be healthy again. */
  readonly timeoutMs: number;
  /** Our own container id or name; Docker sets the hostname to the short id by default. */
  readonly selfId?: string;
  readonly pollMs?: number;
  readonly clock?: Clock;
}

interface ContainerSummary {
  Id: string;
  Names?: string[];
  Labels?: Record<string, string>;
}

interface ContainerInspect {
  Id: string;
  Config?: { Labels?: Record<string, string> };
  State?: { Running?: boolean; Health?: { Status?: string } };
}

const PROJECT_LABEL = 'com.docker.compose.project';
const SERVICE_LABEL = 'com.docker.compose.service';

export function dockerRestartAction(options: DockerRestartOptions): ReloadAction {
  const api = dockerApi(options.endpoint);
  const pollMs = options.pollMs ?? 500;
  const clock = options.clock ?? systemClock;
  return {
    name: 'docker',
    async run(_event, signal) {
      const self = await api<ContainerInspect>('GET', `/containers/${encodeURIComponent(options.selfId ?? hostname())}/json`, signal);
      const project = self.Config?.Labels?.[PROJECT_LABEL];
      if (!project) throw new Error('the sidecar container has no com.docker.compose.project label; is it running under Compose?');
      const filters = encodeURIComponent(JSON.stringify({ label: [`${PROJECT_LABEL}=${project}`] }));
      const containers = await api<ContainerSummary[]>('GET', `/containers/json?filters=${filters}`, signal);
      for (const service of options.services) {
        const targets = containers.filter((c) => c.Labels?.[PROJECT_LABEL] === project && c.Labels?.[SERVICE_LABEL] === service && c.Id !== self.Id);
        for (const target of targets) {
          await api('POST', `/containers/${target.Id}/restart?t=30`, signal);
          await waitHealthy(target.Id, service, signal);
        }
      }
    },
  };

  async function waitHealthy(id: string, service: string, signal: AbortSignal): Promise<void> {
    const deadline = clock.now() + options.timeoutMs;
    for (;;) {
      const state = (await api<ContainerInspect>('GET', `/containers/${id}/json`, signal)).State;
      const health = state?.Health?.Status;
      if (state?.Running && (health === undefined || health === 'healthy')) return;
      if (clock.now() > deadline) throw new Error(`service ${service} not ${health === undefined ? 'running' : 'healthy'} ${Math.round(options.timeoutMs / 1000)}s after restart (state ${health ?? (state?.Running ? 'running' : 'stopped')})`);
      await sleep(clock, pollMs, signal);
    }
  }
}

type DockerApi = <T = unknown>(method: string, path: string, signal: AbortSignal) => Promise<T>;

/** A minimal Engine API client over a unix socket or TCP (socket proxy), API version 1.41. */
function dockerApi(endpoint: string): DockerApi {
  const target = endpoint.startsWith('unix://') || endpoint.startsWith('/')
    ? { socketPath: endpoint.replace(/^unix:\/\//, '') }
    : (() => {
        const url = new URL(endpoint.replace(/^tcp:\/\//, 'http://'));
        return { host: url.hostname, port: Number(url.port || 2375) };
      })();
  return (method, path, signal) =>
    new Promise((resolve, reject) => {
      const request = http.request({ ...target, method, path: `/v1.41${path}`, signal, timeout: 30_000, headers: { host: 'docker' } }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            reject(new Error(`docker ${method} ${path.split('?')[0]}: ${status} ${text.slice(0, 200).trim()}`));
            return;
          }
          try {
            resolve((text === '' ? undefined : JSON.parse(text)) as never);
          } catch {
            reject(new Error(`docker ${method} ${path.split('?')[0]}: unreadable response`));
          }
        });
      });
      request.on('timeout', () => request.destroy(new Error(`docker ${method} ${path}: no answer within 30 s`)));
      request.on('error', (error) => reject(new Error(`docker API at ${endpoint}: ${(error as NodeJS.ErrnoException).code ?? error.message}`)));
      request.end();
    });
}
