// Tests that need an optional package, data set or server skip without it on a
// developer's machine, but under CI a missing requirement is a failure: CI installs
// everything, so a skip there would hide a broken install step.
const ci = process.env.CI;
export const inCI = ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';

/** For `it.skipIf(...)`/`describe.skipIf(...)`: true (skip) when `available` is false outside CI; throws under CI. */
export function missing(available: boolean, what: string): boolean {
  if (available) return false;
  if (inCI) throw new Error(`${what} is required under CI (CI=${ci}) and was not found`);
  console.warn(`skipping: ${what} not found`);
  return true;
}
