// Many processes on one study, as Optuna's RDB storage allows: 4 worker processes share a
// study in SQLite and in PostgreSQL, and no trial is run twice or lost.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/store.js';
import { loadStudy, SqlTuneStorage } from '../../src/tune/index.js';
import { ROOT } from '../helpers/cli.js';
import { postgresAvailable, POSTGRES_PACKAGE, withFreshDatabase } from '../helpers/postgres.js';
import { missing } from '../helpers/requires.js';

const dir = mkdtempSync(join(tmpdir(), 'torchlet-tune-procs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function worker(location: string, study: string, max: number, log: string): Promise<number | null> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'tests', 'helpers', 'tune-worker.ts'), location, study, String(max), log], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

async function fourWorkers(location: string, tag: string): Promise<void> {
  const log = join(dir, `${tag}.log`);
  const max = 40;
  const codes = await Promise.all(Array.from({ length: 4 }, () => worker(location, 'shared', max, log)));
  expect(codes).toEqual([0, 0, 0, 0]);
  const runs = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
  const numbers = runs.map(([n]) => Number(n)).sort((a, b) => a - b);
  // Every trial ran exactly once, and the work was shared.
  expect(numbers).toEqual([...Array(max).keys()]);
  expect(new Set(runs.map(([, pid]) => pid)).size).toBeGreaterThan(1);
  const storage = new SqlTuneStorage(await openStore(location));
  try {
    const study = await loadStudy({ name: 'shared', store: storage });
    const trials = await study.trials;
    expect(trials.map((t) => t.number)).toEqual([...Array(max).keys()]);
    expect(trials.every((t) => t.state === 'complete' && t.value === (t.params.x as number) ** 2)).toBe(true);
    expect(new Set(trials.map((t) => t.id)).size).toBe(max);
  } finally {
    await storage.close();
  }
}

describe('four worker processes on one study', () => {
  it('share an SQLite store without running any trial twice', async () => {
    await fourWorkers(join(dir, 'tune.db'), 'sqlite');
  });

  it.skipIf(missing(postgresAvailable, POSTGRES_PACKAGE))('share a PostgreSQL store without running any trial twice', async () => {
    await withFreshDatabase((url) => fourWorkers(url, 'postgres'));
  });
});
