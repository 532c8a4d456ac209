// Running the real CLI in a child process, and checking that a
// failure was reported as an error rather than a crash.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { CliResult } from './spawn.js';

export { cli, cliEnv, CLI_STORE, finished, MNIST_DIR, ROOT, spawnCli, type CliResult } from './spawn.js';

/** What a crash looks like: libtorch's C++ backtrace, std::terminate, a signal, a JS stack. */
const CRASH_SIGNS = [/terminate called/, /Aborted/i, /core dumped/i, /Segmentation fault/i, /Exception raised from/, /frame #\d+/, /^\s+at .+:\d+:\d+\)?$/m];

export function expectNoCrash(r: CliResult): void {
  expect(r.signal, r.stderr).toBeNull();
  for (const sign of CRASH_SIGNS) expect(r.stderr, `stderr shows a crash (${sign})`).not.toMatch(sign);
}

/** Exit 2 (bad input) with exactly one "torchlet: ..." error line matching `pattern`. */
export function expectInputError(r: CliResult, pattern: RegExp): void {
  expectNoCrash(r);
  expect(r.code, r.stderr).toBe(2);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('torchlet: '));
  expect(errors, r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
}

export function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
