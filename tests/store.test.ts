// The run store, one suite run against SQLite and against a real PostgreSQL server.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist, Model, models, train, type MnistData } from '../src/index.js';
import { SCHEMA_VERSION, applyMigrations } from '../src/store/migrations.js';
import { LeaseLostError, RunStore } from '../src/store/store.js';
import { missing } from './helpers/requires.js';
import { POSTGRES_PACKAGE, freshDatabase, postgresAvailable, startCluster } from './helpers/postgres.js';

let tmp: string;
let data: MnistData;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-store-'));
  data = await loadMnist({ trainLimit: 512, testLimit: 500 });
});
afterAll(async () => {
  data.train.dispose();
  data.test.dispose();
  rmSync(tmp, { recursive: true, force: true });
  if (postgresAvailable && !process.env.TORCHLET_TEST_PG) (await startCluster()).stop();
});

let n = 0;
interface Backend {
  name: 'sqlite' | 'postgres';
  skip: () => boolean;
  /** A location for a new, empty store, and its teardown. */
  fresh: () => Promise<{ location: string; drop: () => Promise<void> }>;
}

const backends: Backend[] = [
  { name: 'sqlite', skip: () => false, fresh: async () => ({ location: join(tmp, `s${n++}`, 'runs.db'), drop: async () => undefined }) },
  {
    name: 'postgres',
    skip: () => missing(postgresAvailable, POSTGRES_PACKAGE),
    fresh: async () => {
      const db = await freshDatabase();
      return { location: db.url, drop: db.drop };
    },
  },
];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.each(backends)('run store on $name', (backend) => {
  const skip = backend.skip();
  let store: RunStore;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    if (skip) return;
    const fresh = await backend.fresh();
    drop = fresh.drop;
    store = await RunStore.open(fresh.location);
  });
  afterAll(async () => {
    if (skip) return;
    await store.close();
    await drop();
  });

  it.skipIf(skip)('creates the schema at the latest version', async () => {
    expect(store.dialect).toBe(backend.name);
    expect(await store.schemaVersion()).toBe(SCHEMA_VERSION);
  });

  it.skipIf(skip)('records a train() run: config, environment, every epoch, the best weights, the checkpoint and the curves', async () => {
    const model = new Model(models.super_light, { seed: 3 });
    const result = await train(model, data, {
      epochs: 2,
      seed: 3,
      skipTrainEval: true,
      store,
      experiment: 'unit',
      runName: 'tiny',
    });
    model.dispose();
    expect(result.runId).toMatch(/^[0-9a-f]{32}$/);
    const run = await store.getRun(result.runId!.slice(0, 8));
    expect(run).toMatchObject({ id: result.runId, name: 'tiny', experiment: 'unit', status: 'finished', device: 'cpu', deleted: false, error: null });
    expect(run.config).toMatchObject({ model: 'super_light', aug: false, epochs: 2, seed: 3 });
    expect(run.params).toMatchObject({ model: 'super_light', parameters: 4842 });
    expect(run.versions.libtorch).toMatch(/^\d+\.\d+/);
    expect(run.versions.torchlet).toBe('0.1.0');
    expect(run.host).toBeTruthy();
    expect(run.threads).toBeGreaterThan(0);
    expect(run.git.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(typeof run.git.dirty).toBe('boolean');
    expect(Date.parse(run.endedAt!)).toBeGreaterThanOrEqual(Date.parse(run.startedAt!));
    expect(run.final).toEqual(result.final);
    expect(run.best).toEqual(result.best);
    expect(await store.epochs(run.id)).toEqual(result.history);

    const names = (await store.artifacts(run.id)).map((a) => a.name);
    expect(names).toEqual(['best.pt', 'checkpoint.ckpt', 'curves.png']);
    const best = (await store.artifact(run.id, 'best.pt'))!;
    expect(best.sha256).toBe(sha(best.data));
    expect(best.size).toBe(best.data.length);
    // The stored weights load, and score what the run said they scored.
    const path = join(tmp, 'best.pt');
    writeFileSync(path, best.data);
    const loaded = Model.fromFile(models.super_light, path);
    const stats = await loaded.evaluate(data.test);
    loaded.dispose();
    expect(stats.accuracy).toBe(result.best.accuracy);
    expect((await store.artifact(run.id, 'curves.png'))!.data.subarray(1, 4).toString()).toBe('PNG');
  });

  it.skipIf(skip)('records a failed run with its error', async () => {
    const model = new Model(models.super_light);
    await expect(train(model, data, { epochs: 1, resume: join(tmp, 'missing.ckpt'), store, runName: 'broken' })).rejects.toThrow(/does not exist/);
    model.dispose();
    const [run] = await store.listRuns({ status: 'failed' });
    expect(run).toMatchObject({ name: 'broken', status: 'failed' });
    expect(run!.error).toMatch(/checkpoint .* does not exist/);
  });

  it.skipIf(skip)('lists runs by experiment and status, newest first, and finds them by id prefix', async () => {
    const a = await store.createRun({ config: { epochs: 1 }, experiment: 'list-a', name: 'a' });
    const b = await store.createRun({ config: { epochs: 2 }, experiment: 'list-a', name: 'b' });
    await store.createRun({ config: {}, experiment: 'list-b' });
    expect((await store.listRuns({ experiment: 'list-a' })).map((r) => r.name)).toEqual(['b', 'a']);
    expect((await store.listRuns({ experiment: 'list-a', status: 'queued' })).map((r) => r.id).sort()).toEqual([a.id, b.id].sort());
    expect(await store.experiments()).toEqual(expect.arrayContaining(['list-a', 'list-b', 'unit']));
    expect((await store.getRun(b.id.slice(0, 6))).name).toBe('b');
    await expect(store.getRun('zzzz')).rejects.toThrow(/no run 'zzzz'/);
  });

  it.skipIf(skip)('cancels, deletes and garbage-collects runs with their artifacts', async () => {
    const queued = await store.createRun({ config: {}, experiment: 'gc' });
    expect((await store.cancelRun(queued.id)).status).toBe('cancelled');
    const kept = await store.createRun({ config: {}, experiment: 'gc', status: 'running' });
    await store.endRun(kept.id, 'failed', 'boom');
    await store.putArtifact(kept.id, 'x.bin', Buffer.alloc(1000, 7));
    await store.putArtifact(queued.id, 'y.bin', Buffer.alloc(3000, 1));
    await store.deleteRun(queued.id);
    expect((await store.listRuns({ experiment: 'gc' })).map((r) => r.id)).toEqual([kept.id]);
    expect((await store.getRun(queued.id)).deleted).toBe(true);
    const freed = await store.gc();
    expect(freed).toEqual({ runs: 1, artifacts: 1, bytes: 3000 });
    expect(await store.findRun(queued.id)).toBeUndefined();
    expect((await store.artifact(kept.id, 'x.bin'))!.data).toEqual(Buffer.alloc(1000, 7));
  });

  it.skipIf(skip)('claims each queued run once, however many workers ask at the same time', async () => {
    // Separate pools on PostgreSQL; on SQLite one process has one connection (other processes: store-processes.test.ts).
    const others = backend.name === 'postgres' ? await Promise.all([1, 2, 3].map(() => RunStore.open(store.location))) : [store, store, store];
    try {
      const ids = new Set((await Promise.all([1, 2, 3, 4].map(() => store.createRun({ config: {}, experiment: 'claim' })))).map((r) => r.id));
      // Drain the queue of runs other tests left.
      const claims = await Promise.all([store, ...others].flatMap((s, i) => [0, 1, 2].map((j) => s.claimRun(`w${i}-${j}`, 60_000))));
      const got = claims.filter((r) => r !== undefined && ids.has(r.id)).map((r) => r!.id);
      expect(got.sort()).toEqual([...ids].sort());
      for (const r of claims) if (r !== undefined) expect(r).toMatchObject({ status: 'running', attempts: 1 });
    } finally {
      if (backend.name === 'postgres') await Promise.all(others.map((s) => s.close()));
    }
  });

  it.skipIf(skip)('requeues a run whose lease went stale; the old worker finds it lost and can no longer write', async () => {
    const run = await store.createRun({ config: {}, experiment: 'lease' });
    let claimed;
    do claimed = await store.claimRun('old', 50);
    while (claimed !== undefined && claimed.id !== run.id);
    expect(claimed?.id).toBe(run.id);
    expect(await store.heartbeat(run.id, 'old', 50, { epoch: 0, step: 3, steps: 10, loss: 1, accuracy: 0.5, lr: 0.01 })).toBe('ok');
    expect((await store.getRun(run.id)).progress).toMatchObject({ step: 3 });
    await new Promise((r) => setTimeout(r, 120));
    expect(await store.requeueStale()).toBeGreaterThanOrEqual(1);
    expect(await store.getRun(run.id)).toMatchObject({ status: 'queued', worker: null });
    expect(await store.heartbeat(run.id, 'old', 50)).toBe('lost');
    const record = { epoch: 1, trainLoss: 1, trainAccuracy: 0.5, testLoss: 1, testAccuracy: 0.5, stepLoss: 1, stepAccuracy: 0.5, lr: 0.01, seconds: 1 };
    await expect(store.recorder(run.id, 'old').epoch(record)).rejects.toBeInstanceOf(LeaseLostError);
    const next = await store.claimRun('new', 60_000);
    expect(next).toMatchObject({ id: run.id, worker: 'new', attempts: 2 });
    await store.recorder(run.id, 'new').epoch(record);
    expect(await store.epochs(run.id)).toEqual([record]);
    await store.cancelRun(run.id);
    expect(await store.heartbeat(run.id, 'new')).toBe('cancel');
  });

  it.skipIf(skip)('upgrades a schema-1 store in place, keeping its runs', async () => {
    const fresh = await backend.fresh();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let old: Kysely<any>;
    if (backend.name === 'sqlite') {
      const { mkdirSync } = await import('node:fs');
      const { dirname } = await import('node:path');
      mkdirSync(dirname(fresh.location), { recursive: true });
      old = new Kysely({ dialect: new SqliteDialect({ database: new BetterSqlite3(fresh.location) }) });
    } else {
      old = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: fresh.location }) }) });
    }
    await old.transaction().execute((trx) => applyMigrations(trx, backend.name, 0, 1));
    await old
      .insertInto('runs')
      .values({ id: 'abcd0123abcd0123abcd0123abcd0123', name: 'old', experiment: 'legacy', status: 'finished', config: '{"epochs":3}', params: '{}', created_at: '2026-01-01T00:00:00.000Z' })
      .execute();
    await old.destroy();
    const upgraded = await RunStore.open(fresh.location);
    try {
      expect(await upgraded.schemaVersion()).toBe(SCHEMA_VERSION);
      expect(await upgraded.getRun('abcd0123')).toMatchObject({ name: 'old', experiment: 'legacy', status: 'finished', config: { epochs: 3 }, attempts: 0, cancelRequested: false });
    } finally {
      await upgraded.close();
      await fresh.drop();
    }
  });
});

describe('a PostgreSQL store whose connection is cut', () => {
  const skip = missing(postgresAvailable, POSTGRES_PACKAGE);

  it.skipIf(skip)('between two statements of a write: no crash, and the write is retried on a new connection', async () => {
    // pg emits 'error' on a client that is checked out but idle when its server goes away
    // (a restart, an administrator's terminate); with no listener that killed the process.
    // pg_terminate_backend cuts exactly that connection, between the two statements.
    const fresh = await freshDatabase();
    const store = await RunStore.open(fresh.url);
    const admin = new pg.Client({ connectionString: fresh.url });
    await admin.connect();
    try {
      let attempts = 0;
      const run = await store.write(async (trx) => {
        attempts++;
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        if (attempts === 1) {
          await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
          // Long enough for the client to see its socket close while nothing is in flight.
          await new Promise((r) => setTimeout(r, 300));
        }
        return trx.selectFrom('runs').select('id').execute();
      });
      expect(run).toEqual([]);
      expect(attempts).toBe(2);
    } finally {
      await admin.end();
      await store.close();
      await fresh.drop();
    }
  });
});

describe('an SQLite store refuses files that are not torchlet stores', () => {
  it('a corrupt file', async () => {
    const path = join(tmp, 'corrupt.db');
    writeFileSync(path, Buffer.from('this is not a database at all, just some text bytes\n'.repeat(20)));
    await expect(RunStore.open(path)).rejects.toThrow(/corrupt\.db' is not a torchlet run store: it is not an SQLite database/);
  });
  it('a truncated store', async () => {
    const path = join(tmp, 'trunc', 'runs.db');
    const store = await RunStore.open(path);
    await store.close();
    const { readFileSync } = await import('node:fs');
    writeFileSync(path, readFileSync(path).subarray(0, 100));
    await expect(RunStore.open(path)).rejects.toThrow(/runs\.db/);
  });
  it('another application\'s SQLite database', async () => {
    const path = join(tmp, 'foreign.db');
    const db = new BetterSqlite3(path);
    db.exec('create table customers (id integer primary key, name text)');
    db.close();
    await expect(RunStore.open(path)).rejects.toThrow(/foreign\.db is not a torchlet run store: it holds other tables \(customers\)/);
  });
  it('a store from a newer torchlet', async () => {
    const path = join(tmp, 'newer', 'runs.db');
    await (await RunStore.open(path)).close();
    const db = new BetterSqlite3(path);
    db.prepare('insert into torchlet_schema_version values (99, ?)').run(new Date().toISOString());
    db.close();
    await expect(RunStore.open(path)).rejects.toThrow(`schema version 99, newer than this torchlet knows (${SCHEMA_VERSION})`);
  });
});
