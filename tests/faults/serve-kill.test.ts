// kill -9 `torchlet serve` while runs are queued and one is training (its local worker
// child dies with it), start it again on the same store, and lose nothing: every run
// finishes, the interrupted one resumed from its last checkpoint with each epoch recorded
// once, the queued ones trained in turn. SQLite and PostgreSQL.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RunStore, type Run } from '../../src/store/store.js';
import { waitFor, withoutTimes } from '../helpers/runs.js';
import { POSTGRES_PACKAGE, postgresAvailable, startCluster, withFreshDatabase } from '../helpers/postgres.js';
import { missing } from '../helpers/requires.js';
import { spawnServer } from '../serve/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'torchlet-serve-kill-'));
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  if (postgresAvailable && !process.env.TORCHLET_TEST_PG) (await startCluster()).stop();
});

const CONFIG = { model: 'super_light', aug: true, epochs: 3, trainLimit: 3000, seed: 5, threads: 1 };
const LEASE_S = 3;

async function killServer(location: string): Promise<void> {
  const args = ['--store', location, '--lease', String(LEASE_S), '--models', 'super_light', '--no-web'];
  const first = await spawnServer(args);
  const store = await RunStore.open(location);
  try {
    const ids: string[] = [];
    for (const name of ['first', 'second', 'third']) {
      const res = await fetch(`${first.url}/runs?experiment=kill-server&name=${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CONFIG) });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    // The local worker trains the first run; kill the server once an epoch of it is saved.
    await waitFor('an epoch of the first run', async () => ((await store.epochs(ids[0]!)).length >= 1 ? true : undefined));
    first.child.kill('SIGKILL');
    // The result resolves once the server and its worker child (which shares its output) have both exited.
    const killed = await first.result;
    expect(killed.signal).toBe('SIGKILL');
    const before: Run[] = await Promise.all(ids.map((id) => store.getRun(id)));
    expect(before.map((r) => r.status)).toEqual(['running', 'queued', 'queued']);
    const saved = await store.epochs(ids[0]!);
    expect(saved.length).toBeLessThan(CONFIG.epochs);

    const second = await spawnServer(args);
    try {
      const done = await waitFor('every run to end', async () => {
        const runs = await Promise.all(ids.map((id) => store.getRun(id)));
        return runs.every((r) => ['finished', 'failed', 'cancelled'].includes(r.status)) ? runs : undefined;
      });
      expect(done.map((r) => [r.status, r.error])).toEqual(ids.map(() => ['finished', null]));
      expect(done.map((r) => r.attempts)).toEqual([2, 1, 1]);
      for (const id of ids) {
        const epochs = await store.epochs(id);
        expect(epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
        expect((await store.artifact(id, 'best.pt'))?.data.length).toBeGreaterThan(1000);
      }
      // What was saved before the kill is still there, unchanged.
      expect(withoutTimes((await store.epochs(ids[0]!)).slice(0, saved.length))).toEqual(withoutTimes(saved));
      const listed = (await (await fetch(`${second.url}/runs?experiment=kill-server`)).json()) as { runs: { id: string }[] };
      expect(listed.runs.map((r) => r.id).sort()).toEqual([...ids].sort());
      // The study pages of torchlet tune are mounted beside the dashboard.
      for (const path of ['/studies', '/dashboard/studies']) expect((await fetch(`${second.url}${path}`)).status, path).toBe(200);
      console.log(`kill -9 serve on ${store.dialect}: killed after ${saved.length} epoch(s) of the first run, 2 queued; all 3 finished after the restart`);
    } finally {
      second.child.kill('SIGTERM');
      const stopped = await second.result;
      expect(stopped.code, stopped.stderr).toBe(0);
    }
  } finally {
    await store.close();
  }
}

describe('kill -9 torchlet serve while runs are queued and running; restart it; nothing is lost', () => {
  it('SQLite', async () => {
    await killServer(join(tmp, 'runs.db'));
  });
  it.skipIf(missing(postgresAvailable, POSTGRES_PACKAGE))('PostgreSQL', async () => {
    await withFreshDatabase((url) => killServer(url));
  });
});
