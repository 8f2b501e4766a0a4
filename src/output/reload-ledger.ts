/**
 * The reload ledger on the volume (`..reloaded`, beside the versions, gone with them when the tmpfs
 * is): the revision the app was last told about. See `ReloadLedger` in src/reload/scheduler.ts.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

const LEDGER = '..reloaded';

export function reloadLedger(outputDir: string): { read(): Promise<number | undefined>; write(revision: number): Promise<void> } {
  const file = path.join(outputDir, LEDGER);
  return {
    async read() {
      try {
        // Never through a link, never more than a number's worth of bytes.
        const handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
        try {
          const info = await handle.stat();
          if (!info.isFile() || info.size > 32) return undefined;
          const text = (await handle.readFile('utf8')).trim();
          return /^\d{1,12}$/.test(text) ? Number(text) : undefined;
        } finally {
          await handle.close();
        }
      } catch {
        return undefined;
      }
    },
    async write(revision) {
      const temp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
      try {
        await writeFile(temp, `${revision}\n`, { mode: 0o600, flag: 'wx' });
        await rename(temp, file);
      } finally {
        await rm(temp, { force: true });
      }
    },
  };
}
