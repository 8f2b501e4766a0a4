/** Polls until `condition` holds (exceptions count as "not yet"), instead of sleeping a fixed time. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 3_000, pollMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
