/**
 * The reload stage: which actions the configuration asks for, behind one scheduler.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { commandAction, httpAction } from './actions.js';
import { dockerRestartAction } from './docker.js';
import type { Clock } from '../timers.js';
import { ReloadScheduler, type ReloadAction, type ReloadLedger, type ReloadOutcome } from './scheduler.js';

export { ReloadScheduler, type ChangeEvent, type ReloadAction, type ReloadLedger, type ReloadOutcome } from './scheduler.js';

export function createReloads(config: Config, log: Logger, onResult: (action: string, outcome: ReloadOutcome, ms: number) => void, ledger?: ReloadLedger, clock?: Clock): ReloadScheduler {
  const actions: ReloadAction[] = [];
  if (config.reloadCommand) actions.push(commandAction(config.reloadCommand, config.reloadTimeoutMs, clock));
  if (config.reloadUrl) actions.push(httpAction(config.reloadUrl, config.reloadTimeoutMs, clock));
  if (config.restartServices.length > 0) {
    actions.push(dockerRestartAction({ endpoint: config.dockerHost, services: config.restartServices, timeoutMs: config.reloadTimeoutMs, ...(clock ? { clock } : {}) }));
  }
  return new ReloadScheduler({
    actions,
    ledger,
    reloadOnFirstWrite: config.reloadOnFirstWrite,
    debounceMs: config.reloadDebounceMs,
    cooldownMs: config.reloadCooldownMs,
    log,
    onResult,
    ...(clock ? { clock } : {}),
  });
}
