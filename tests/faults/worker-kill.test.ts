// Workers against real stores, under faults:
// - SIGKILL a worker mid-epoch: its lease goes stale, the run is requeued, a second
//   worker resumes it from the last checkpoint in the store, and the run's best weights
//   are byte-identical to an uninterrupted run's (SQLite and PostgreSQL);
// - restart PostgreSQL under a running worker: it reconnects and finishes the run.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runWorker } from '../../src/jobs/worker.js';
import { RunStore, type Run } from '../../src/store/store.js';
import { waitFor, withoutTimes } from '../helpers/runs.js';
import { ROOT, cliEnv, finished, type CliResult } from '../helpers/cli.js';
import { POSTGRES_PACKAGE, freshDatabase, postgresAvailable, startCluster, withFreshDatabase } from '../helpers/postgres.js';
import { missing } from '../helpers/requires.js';

const tmp = mkdtempSync(join(tmpdir(), 'torchlet-worker-kill-'));
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  if (postgresAvailable && !process.env.TORCHLET_TEST_PG) (await startCluster()).stop();
});

const CONFIG = { model: 'super_light', aug: true, epochs: 3, trainLimit: 3000, seed: 11, threads: 1 };
const LEASE_S = 3;

function spawnWorker(location: string, id: string, untilEmpty: boolean): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'worker', '--store', location, '--id', id, '--lease', String(LEASE_S), '--poll', '0.2', ...(untilEmpty ? ['--until-empty'] : [])],
    { cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return { child, done: finished(child) };
}

async function killAndResume(location: string): Promise<void> {
  const store = await RunStore.open(location);
  try {
    // The uninterrupted reference, trained by a worker in this process.
    const reference = await store.createRun({ config: CONFIG, name: 'reference' });
    await runWorker(store, { id: 'reference-worker', untilEmpty: true, dataRoot: join(ROOT, 'data') });
    const ref = await store.getRun(reference.id);
    expect(ref.status, ref.error ?? '').toBe('finished');
    const epochSeconds = (Date.parse(ref.endedAt!) - Date.parse(ref.startedAt!)) / 1000 / CONFIG.epochs;

    const victim = await store.createRun({ config: CONFIG, name: 'victim' });
    const first = spawnWorker(location, 'doomed', false);
    // Kill it part-way through its second epoch: one checkpoint is in the store.
    await waitFor('the first epoch', async () => ((await store.epochs(victim.id)).length >= 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 0.4 * epochSeconds * 1000));
    const before: Run = await store.getRun(victim.id);
    first.child.kill('SIGKILL');
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');
    expect(before).toMatchObject({ status: 'running', worker: 'doomed' });
    const epochsAtKill = (await store.epochs(victim.id)).length;
    expect(epochsAtKill).toBeLessThan(CONFIG.epochs);

    // Once the lease is stale, the next worker requeues the run and resumes it.
    await new Promise((r) => setTimeout(r, (LEASE_S + 0.5) * 1000));
    const second = await spawnWorker(location, 'rescuer', true).done;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/resuming from its checkpoint/);
    const done = await store.getRun(victim.id);
    expect(done).toMatchObject({ status: 'finished', worker: 'rescuer', attempts: 2 });
    console.log(`kill -9 on ${store.dialect}: killed after ${epochsAtKill} epoch(s) (epoch ~${epochSeconds.toFixed(1)}s); resumed by a second worker`);

    const [refBest, best] = await Promise.all([store.artifact(ref.id, 'best.pt'), store.artifact(victim.id, 'best.pt')]);
    expect(best!.sha256).toBe(refBest!.sha256);
    expect(withoutTimes(await store.epochs(victim.id))).toEqual(withoutTimes(await store.epochs(ref.id)));
    expect(done.best).toEqual(ref.best);
  } finally {
    await store.close();
  }
}

describe('kill -9 a worker mid-epoch; a second worker finishes the run bit-identically', () => {
  it('SQLite', async () => {
    await killAndResume(join(tmp, 'runs.db'));
  });
  it.skipIf(missing(postgresAvailable, POSTGRES_PACKAGE))('PostgreSQL', async () => {
    await withFreshDatabase((url) => killAndResume(url));
  });
});

describe.skipIf(missing(postgresAvailable && !process.env.TORCHLET_TEST_PG, `${POSTGRES_PACKAGE} (a private cluster this test can restart)`))('PostgreSQL restarts under a running worker', () => {
  it('the worker reconnects and finishes the run', async () => {
    const cluster = await startCluster();
    const db = await freshDatabase();
    const store = await RunStore.open(db.url);
    try {
      const run = await store.createRun({ config: CONFIG, name: 'through-a-restart' });
      const worker = spawnWorker(db.url, 'steadfast', true);
      await waitFor('the first epoch', async () => ((await store.epochs(run.id)).length >= 1 ? true : undefined));
      // A fast shutdown cuts every connection, then the server comes back on the same port.
      cluster.restart();
      const result = await worker.done;
      expect(result.code, result.stderr).toBe(0);
      const done = await waitFor('the run', async () => {
        try {
          const r = await store.getRun(run.id);
          return r.status === 'running' ? undefined : r;
        } catch {
          return undefined; // this test's own pool reconnects too
        }
      });
      expect(done, done.error ?? '').toMatchObject({ status: 'finished', attempts: 1, worker: 'steadfast' });
      expect(await store.epochs(run.id)).toHaveLength(CONFIG.epochs);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
