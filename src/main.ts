#!/usr/bin/env node
/**
 * Entry point: run the subcommand, turn SIGTERM/SIGINT into a clean stop, exit with its code.
 * Everything else is in cli.ts (subcommands) and app.ts (wiring).
 */
const argv = process.argv.slice(2);

// The Docker HEALTHCHECK runs every few seconds: answer it without loading the program.
if (argv.length === 1 && argv[0] === 'healthcheck') {
  const { healthcheck } = await import('./healthcheck.js');
  process.exit(await healthcheck(process.env));
}

const { runCli } = await import('./cli.js');
const shutdown = new Promise<void>((resolve) => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
});

const code = await runCli(argv, {
  env: process.env,
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
  shutdown,
  isTTY: process.stdout.isTTY === true,
});
process.exit(code);
