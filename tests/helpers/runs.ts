// What the kill tests of the run store share: polling the store until a state shows up, and
// comparing epoch records without their wall-clock times (a resumed run's differ).
import type { EpochRecord } from '../../src/index.js';

/** Polls `fn` every 100 ms until it gives a value; fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const withoutTimes = (records: EpochRecord[]): Omit<EpochRecord, 'seconds'>[] => records.map(({ seconds: _s, ...rest }) => rest);
