// The addon built with clang's AddressSanitizer + LeakSanitizer (scripts/asan.sh, in its
// own build directory) runs the native smoke script (tests/faults/asan-smoke.mjs) with
// no memory error and no leak in torchlet's code. Skips, saying why, without clang and
// its ASan runtime (apt-get install -y clang libclang-rt-14-dev).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, finished } from '../helpers/cli.js';
import { missing } from '../helpers/requires.js';

const SCRIPT = join(ROOT, 'scripts', 'asan.sh');
const SUPPRESSIONS = join(ROOT, 'tests', 'faults', 'lsan.supp');

function asanRuntime(): string | undefined {
  const r = spawnSync('clang', ['-print-file-name=libclang_rt.asan-x86_64.so'], { encoding: 'utf8' });
  const path = r.status === 0 ? r.stdout.trim() : '';
  return path.startsWith('/') ? path : undefined;
}

const runtime = asanRuntime();
const hasClang = spawnSync('clang++', ['--version']).status === 0 && runtime !== undefined;
if (!hasClang) console.warn('asan: clang++ or libclang_rt.asan-x86_64.so not found (apt-get install -y clang libclang-rt-14-dev); skipping');

const run = async (mode: 'build' | 'run') => {
  const started = performance.now();
  const r = await finished(spawn('bash', [SCRIPT, mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  return { ...r, seconds: (performance.now() - started) / 1000, output: r.stdout + r.stderr };
};

describe.skipIf(missing(hasClang, 'clang++ with libclang_rt.asan'))('AddressSanitizer + LeakSanitizer', () => {
  it('the suppressions name no torchlet code', () => {
    const rules = readFileSync(SUPPRESSIONS, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
    for (const rule of rules) {
      expect(rule).toMatch(/^leak:/);
      expect(rule.toLowerCase()).not.toContain('torchlet');
      expect(rule).not.toMatch(/^leak:\*?$/);
    }
  });

  it('builds the instrumented addon outside build/', async () => {
    const r = await run('build');
    console.log(`asan: build took ${r.seconds.toFixed(0)}s`);
    expect(r.code, r.output.slice(-4000)).toBe(0);
    expect(r.stdout.trim()).toMatch(/torchlet\.node$/);
    expect(r.stdout.trim().startsWith(join(ROOT, 'build'))).toBe(false);
  }, 900_000);

  it('runs the smoke script with no ASan error and no leak in torchlet code', async () => {
    const r = await run('run');
    const suppressed = r.output.match(/Suppressions used:\n[\s\S]*?\n-{10,}/)?.[0];
    console.log(`asan: smoke run took ${r.seconds.toFixed(0)}s${suppressed ? `\n${suppressed}` : ', no suppressed leaks'}`);
    expect(r.output).toMatch(/asan-smoke: ok \(\d+ checks\)/);
    expect(r.output).not.toMatch(/ERROR: AddressSanitizer/);
    expect(r.output).not.toMatch(/ERROR: LeakSanitizer/);
    expect(r.output).not.toMatch(/LeakSanitizer has encountered a fatal error/);
    // Any leak report left would have a torchlet frame in it or not; neither is allowed.
    expect(r.output).not.toMatch(/(Direct|Indirect) leak of/);
    expect(r.code, r.output.slice(-6000)).toBe(0);
  }, 600_000);
});
