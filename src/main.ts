#!/usr/bin/env node
/**
 * Entry point: run the subcommand, turn SIGTERM/SIGINT into a clean stop, exit with its code.
 * Everything else is in cli.ts (subcommands) and app.ts (wiring).
 */
import { runCli } from './cli.js';

const shutdown = new Promise<void>((resolve) => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
});

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
  shutdown,
});
process.exit(code);
