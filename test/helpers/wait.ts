/**
 * Polls `probe` until it returns a truthy value, and returns that value: a wait on a condition,
 * never on a fixed sleep. A thrown error counts as "not yet" and is named in the failure, which
 * also names `what` was awaited.
 *
 *   const report = await waitFor(async () => { const h = await health(app); return h.body.revision === 2 && h; }, 'revision 2');
 */
export async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 8_000, pollMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`not within ${timeoutMs} ms: ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
