// Several processes write to one store at once: no "database is locked" reaches anyone,
// and every queued run is claimed by exactly one of them.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RunStore } from '../src/store/store.js';
import { ROOT, finished } from './helpers/cli.js';
import { missing } from './helpers/requires.js';
import { POSTGRES_PACKAGE, postgresAvailable, startCluster, withFreshDatabase } from './helpers/postgres.js';

const tmp = mkdtempSync(join(tmpdir(), 'torchlet-store-procs-'));
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  if (postgresAvailable && !process.env.TORCHLET_TEST_PG) (await startCluster()).stop();
});

const PROCESSES = 3;
const ROUNDS = 12;

async function hammer(location: string): Promise<void> {
  await (await RunStore.open(location)).close();
  const children = Array.from({ length: PROCESSES }, (_, i) =>
    finished(spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'tests', 'helpers', 'store-writer.ts'), location, `p${i}`, String(ROUNDS)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })),
  );
  const results = await Promise.all(children);
  const claimed: string[] = [];
  for (const r of results) {
    expect(r.stderr).not.toMatch(/locked|busy/i);
    expect(r.code, r.stderr).toBe(0);
    claimed.push(...(JSON.parse(r.stdout) as string[]));
  }
  expect(new Set(claimed).size).toBe(claimed.length);
  const store = await RunStore.open(location);
  try {
    const runs = await store.listRuns({ experiment: 'processes' });
    expect(runs).toHaveLength(PROCESSES * ROUNDS);
    expect(runs.filter((r) => r.status === 'running')).toHaveLength(claimed.length);
    expect(claimed.length).toBeGreaterThan(0);
  } finally {
    await store.close();
  }
}

describe('processes writing to one store at once', () => {
  it('SQLite (WAL, busy timeout, BEGIN IMMEDIATE)', async () => {
    await hammer(join(tmp, 'runs.db'));
  });
  it.skipIf(missing(postgresAvailable, POSTGRES_PACKAGE))('PostgreSQL (FOR UPDATE SKIP LOCKED)', async () => {
    await withFreshDatabase((url) => hammer(url));
  });
});
