/**
 * The fast tier's only uses of real time, each with its reason. test/hygiene.test.ts fails on any
 * other use of setTimeout, setInterval, setImmediate, node:timers(/promises), AbortSignal.timeout,
 * Date.now, `new Date()`, performance.now, process.hrtime or Atomics.wait in a fast-tier file (tests and helpers alike):
 * those waits and clocks are what made the suite fail on a loaded machine. Time is the manual clock's
 * (test/helpers/clock.ts); waits are on events (a request reaching the fake, a log line, a file).
 * An entry names a file and an API; the reason says why real time is right there.
 */
export interface RealTimeUse {
  readonly file: string;
  readonly api: RealTimeApi;
  readonly reason: string;
}

export const REAL_TIME_APIS = [
  'setTimeout',
  'setInterval',
  'setImmediate',
  'node:timers',
  'AbortSignal.timeout',
  'Date.now',
  'new Date()',
  'performance.now',
  'process.hrtime',
  'Atomics.wait',
] as const;
export type RealTimeApi = (typeof REAL_TIME_APIS)[number];

export const REAL_TIME_ALLOWED: readonly RealTimeUse[] = [
  {
    file: 'test/helpers/clock.ts',
    api: 'setImmediate',
    reason: 'the manual clock lets the code a timer woke run (promise jobs, ready I/O callbacks) before it looks for the next due timer; no time passes',
  },
  {
    file: 'test/helpers/wait.ts',
    api: 'setTimeout',
    reason: 'waitFor polls an observable condition (a file, a log line, a health answer); its bound only turns a hang into a named failure, and no assertion reads elapsed time',
  },
  {
    file: 'test/helpers/wait.ts',
    api: 'Date.now',
    reason: "waitFor's hang guard (see its setTimeout entry)",
  },
  {
    file: 'test/tools/lease-holder.mjs',
    api: 'setTimeout',
    reason: "a lease in another process on a frozen clock: its polls fire on Node's timers, but no lease can expire, so only release and standby hand it over however slow the machine; the 5 ms inside only widens the window a second holder would be caught in",
  },
  {
    file: 'test/tools/lease-holder.mjs',
    api: 'setInterval',
    reason: 'keeps the holder process alive while it holds the lease (an empty interval; nothing is timed)',
  },
  {
    file: 'test/tools/reader.mjs',
    api: 'setTimeout',
    reason: 'run only by test/system/survive-torn.test.ts: the reader paces its reads between rewrites',
  },
  {
    file: 'test/tools/reader.mjs',
    api: 'setImmediate',
    reason: 'run only by test/system/survive-torn.test.ts: yields between reads when unpaced',
  },
  {
    file: 'test/tools/reader.mjs',
    api: 'performance.now',
    reason: 'run only by test/system/survive-torn.test.ts: reports how long a missing file stayed missing, never asserted',
  },
  {
    file: 'test/fake-infisical/store.ts',
    api: 'new Date()',
    reason: "the createdAt/updatedAt a real server writes into a secret version: data the client shows, never a time anything waits on or compares",
  },
];
