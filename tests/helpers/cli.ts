// Running the real CLI in a child process, and checking that a
// failure was reported as an error rather than a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MNIST_DIR = join(ROOT, 'data', 'mnist');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Logs and the run store of CLI runs go here, never into the repository. */
const logDir = mkdtempSync(join(tmpdir(), 'torchlet-faults-logs-'));
export const CLI_STORE = join(logDir, 'runs.db');

export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, CI: '1', TORCHLET_LOG_DIR: logDir, TORCHLET_STORE: CLI_STORE, TORCHLET_DEBUG: '', ...extra };
}

/** Starts `torchlet <args>` through tsx, as `npm run train` would. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
    cwd: ROOT,
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Collects a child's output and exit status. */
export function finished(child: ChildProcess): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return finished(spawnCli(args, env));
}

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
