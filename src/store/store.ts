// The run store: runs, their epochs and their artifacts, in an embedded SQLite file or in
// PostgreSQL, through one Kysely query layer. Artifacts live in the database itself, so a
// PostgreSQL store is complete for every machine that reads it.
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Selectable } from 'kysely';
import pg from 'pg';
import { native } from '../native.js';
import { packageRoot } from '../package-root.js';
import { trainingCurvesPng } from '../plot.js';
import { TrainingAborted, type EpochRecord, type OwnedRun, type RunRecorder, type RunSink, type RunStart, type TrainResult } from '../train.js';
import { SCHEMA_VERSION, applyMigrations, schemaVersion, type Dialect } from './migrations.js';
import type { Database, RunStatus, RunsTable } from './schema.js';

export type { RunStatus } from './schema.js';
export { RUN_STATUSES } from './schema.js';

export const DEFAULT_STORE = join('torchlet-runs', 'runs.db');

/** Step progress of a running run, as its worker last reported it. */
export interface RunProgress {
  epoch: number;
  step: number;
  steps: number;
  loss: number;
  accuracy: number;
  lr: number;
}

export interface BestMetric {
  epoch: number;
  accuracy: number;
  by: 'test' | 'val';
}

export interface Run {
  id: string;
  name: string;
  experiment: string;
  status: RunStatus;
  /** The config, in the schema of `torchlet train --config`. */
  config: Record<string, unknown>;
  /** The resolved recipe and facts of the run (model, parameter count). */
  params: Record<string, unknown>;
  git: { commit: string | null; dirty: boolean | null };
  versions: { torchlet: string | null; libtorch: string | null };
  host: string | null;
  device: string | null;
  threads: number | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  final: EpochRecord | null;
  best: BestMetric | null;
  error: string | null;
  deleted: boolean;
  worker: string | null;
  leaseExpiresAt: string | null;
  heartbeatAt: string | null;
  attempts: number;
  cancelRequested: boolean;
  progress: RunProgress | null;
}

export interface ArtifactInfo {
  name: string;
  size: number;
  sha256: string;
  createdAt: string;
}

export interface Artifact extends ArtifactInfo {
  data: Buffer;
}

export interface NewRun {
  config: Record<string, unknown>;
  params?: Record<string, unknown>;
  name?: string;
  experiment?: string;
  /** 'running' for a run trained right here; 'queued' (the default) for a worker to claim. */
  status?: 'queued' | 'running';
  device?: string;
  threads?: number;
}

export interface RunFilter {
  experiment?: string;
  status?: RunStatus;
  includeDeleted?: boolean;
}

export class RunNotFoundError extends Error {}
/** A worker's lease on a run ended (it went stale and another worker took the run, or the run was cancelled). */
export class LeaseLostError extends Error {}
export class StoreError extends Error {}

type Environment = Pick<RunsTable, 'git_commit' | 'git_dirty' | 'torchlet_version' | 'libtorch_version' | 'host'>;
let cachedEnvironment: Environment | undefined;

/** The facts of the machine and code a run trains with (the code cannot change under a running process, so once). */
function environment(): Environment {
  cachedEnvironment ??= probeEnvironment();
  return cachedEnvironment;
}

function probeEnvironment(): Environment {
  const git = (args: string[]): string | null => {
    try {
      return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim();
    } catch {
      return null;
    }
  };
  const commit = git(['rev-parse', 'HEAD']);
  const status = commit === null ? null : git(['status', '--porcelain', '--untracked-files=no']);
  const root = packageRoot();
  let torchletVersion: string | null = null;
  try {
    if (root !== undefined) torchletVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? null;
  } catch {
    torchletVersion = null;
  }
  let libtorch: string | null = null;
  try {
    libtorch = native().libtorchVersion;
  } catch {
    libtorch = null;
  }
  return {
    git_commit: commit,
    git_dirty: status === null ? null : status === '' ? 0 : 1,
    torchlet_version: torchletVersion,
    libtorch_version: libtorch,
    host: hostname(),
  };
}

const parseJson = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

function toRun(row: Selectable<RunsTable>): Run {
  return {
    id: row.id,
    name: row.name,
    experiment: row.experiment,
    status: row.status,
    config: JSON.parse(row.config) as Record<string, unknown>,
    params: JSON.parse(row.params) as Record<string, unknown>,
    git: { commit: row.git_commit, dirty: row.git_dirty === null ? null : row.git_dirty === 1 },
    versions: { torchlet: row.torchlet_version, libtorch: row.libtorch_version },
    host: row.host,
    device: row.device,
    threads: row.threads,
    createdAt: row.created_at,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    final: parseJson<EpochRecord>(row.final_metrics),
    best: parseJson<BestMetric>(row.best_metrics),
    error: row.error,
    deleted: row.deleted_at !== null,
    worker: row.worker_id,
    leaseExpiresAt: row.lease_expires_at,
    heartbeatAt: row.heartbeat_at,
    attempts: Number(row.attempts),
    cancelRequested: Number(row.cancel_requested) === 1,
    progress: parseJson<RunProgress>(row.progress),
  };
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
let lastStamp = 0;
/**
 * Strictly increasing within a process, so that runs created in the same millisecond still
 * list newest first and leave the queue in the order they were made.
 */
const now = (): string => {
  lastStamp = Math.max(Date.now(), lastStamp + 1);
  return new Date(lastStamp).toISOString();
};
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A postgres:// URL with its password hidden, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

const SQLITE_MAGIC = 'SQLite format 3\0';

function openSqlite(path: string): BetterSqlite3.Database {
  if (existsSync(path) && statSync(path).size > 0) {
    const head = Buffer.alloc(16);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, head, 0, 16, 0);
    } finally {
      closeSync(fd);
    }
    if (head.toString('latin1') !== SQLITE_MAGIC) throw new StoreError(`'${path}' is not a torchlet run store: it is not an SQLite database (the file is corrupt or of another kind)`);
  }
  mkdirSync(dirname(path), { recursive: true });
  let db: BetterSqlite3.Database;
  try {
    // The busy timeout makes a writer wait for another process's transaction instead of failing with "database is locked".
    db = new BetterSqlite3(path, { timeout: 15_000 });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('quick_check(1)');
  } catch (err) {
    throw new StoreError(`'${path}' is not a usable torchlet run store: ${errorText(err)}`);
  }
  return db;
}

/** True for the errors a database restart or a dropped connection causes: worth retrying. */
export function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'SQLITE_BUSY', 'SQLITE_LOCKED'].includes(code)) return true;
    // PostgreSQL: connection exceptions (08...), admin shutdown and friends (57P0x), too many connections.
    if (/^(08|57P0)/.test(code) || code === '53300') return true;
  }
  return /Connection terminated|connection timeout|terminating connection|Client has encountered a connection error|the database system is (starting up|shutting down)/i.test(errorText(err));
}

export class RunStore implements RunSink {
  readonly dialect: Dialect;
  /** Where the store is, with any password hidden. */
  readonly location: string;
  readonly db: Kysely<Database>;

  private constructor(db: Kysely<Database>, dialect: Dialect, location: string) {
    this.db = db;
    this.dialect = dialect;
    this.location = location;
  }

  /**
   * Opens (creating or upgrading it as needed) the store at `location`: a postgres:// URL
   * or an SQLite file path; default TORCHLET_STORE, then ./torchlet-runs/runs.db.
   */
  static async open(location?: string): Promise<RunStore> {
    const where = location ?? (process.env.TORCHLET_STORE || DEFAULT_STORE);
    let store: RunStore;
    if (/^postgres(ql)?:\/\//i.test(where)) {
      const pool = new pg.Pool({ connectionString: where, max: 4, connectionTimeoutMillis: 10_000 });
      // A connection dropping (a database restart, an administrator's terminate) must not
      // crash the process. The pool reports it for an idle client; a client checked out
      // between two statements (Kysely holds one through a transaction) reports it on itself,
      // and then its next statement fails, which write() retries on a new connection.
      pool.on('error', () => undefined);
      pool.on('connect', (client) => client.on('error', () => undefined));
      store = new RunStore(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), 'postgres', redact(where));
    } else {
      const path = resolve(where.replace(/^sqlite:/i, ''));
      const sqlite = openSqlite(path);
      store = new RunStore(new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) }), 'sqlite', path);
    }
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err instanceof StoreError ? err : new StoreError(`cannot open the run store ${store.location}: ${errorText(err)}`);
    }
    return store;
  }

  /** Brings the schema up to date, refusing a database that is not a torchlet store or is newer than this code. */
  private async migrate(): Promise<void> {
    await this.write(async (trx) => {
      if (this.dialect === 'postgres') await sql`select pg_advisory_xact_lock(74657)`.execute(trx);
      const version = await schemaVersion(trx);
      if (version > SCHEMA_VERSION) throw new StoreError(`the run store ${this.location} has schema version ${version}, newer than this torchlet knows (${SCHEMA_VERSION}): upgrade torchlet`);
      if (version === 0) {
        const tables = (await trx.introspection.getTables()).map((t) => t.name);
        const clash = this.dialect === 'sqlite' ? tables : tables.filter((t) => ['runs', 'run_epochs', 'run_artifacts'].includes(t));
        if (clash.length > 0) throw new StoreError(`${this.location} is not a torchlet run store: it holds other tables (${clash.slice(0, 5).join(', ')}) and no torchlet_schema_version`);
      }
      if (version < SCHEMA_VERSION) await applyMigrations(trx, this.dialect, version);
    });
  }

  async schemaVersion(): Promise<number> {
    return schemaVersion(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  /**
   * Runs `fn` in a write transaction: BEGIN IMMEDIATE on SQLite (the write lock up front, so
   * two processes queue on the busy timeout instead of deadlocking), a plain transaction on
   * PostgreSQL. Retries a few times when the database is busy or its connection dropped.
   */
  async write<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.dialect === 'postgres') return await this.db.transaction().execute(fn);
        return await this.db.connection().execute(async (conn) => {
          await sql`begin immediate`.execute(conn);
          try {
            const result = await fn(conn);
            await sql`commit`.execute(conn);
            return result;
          } catch (err) {
            await sql`rollback`.execute(conn).catch(() => undefined);
            throw err;
          }
        });
      } catch (err) {
        if (attempt >= 5 || !isTransient(err)) throw err;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }

  // ---- runs ------------------------------------------------------------------------

  async createRun(init: NewRun): Promise<Run> {
    const id = randomUUID().replace(/-/g, '');
    const status = init.status ?? 'queued';
    const at = now();
    const row: RunsTable = {
      id,
      name: init.name ?? `run-${id.slice(0, 8)}`,
      experiment: init.experiment ?? 'default',
      status,
      config: JSON.stringify(init.config),
      params: JSON.stringify(init.params ?? {}),
      ...(status === 'running'
        ? environment()
        : { git_commit: null, git_dirty: null, torchlet_version: null, libtorch_version: null, host: null }),
      device: init.device ?? null,
      threads: init.threads ?? null,
      created_at: at,
      started_at: status === 'running' ? at : null,
      ended_at: null,
      final_metrics: null,
      best_metrics: null,
      error: null,
      deleted_at: null,
      worker_id: null,
      lease_expires_at: null,
      heartbeat_at: null,
      attempts: status === 'running' ? 1 : 0,
      cancel_requested: 0,
      progress: null,
    };
    await this.write((trx) => trx.insertInto('runs').values(row).execute());
    return toRun(row);
  }

  /** Finds a run by its id or a unique prefix of it (at least 4 characters), deleted runs included. */
  async findRun(idOrPrefix: string): Promise<Run | undefined> {
    const key = idOrPrefix.trim().toLowerCase();
    if (!/^[0-9a-f]{4,32}$/.test(key)) return undefined;
    const rows = await this.db.selectFrom('runs').selectAll().where('id', 'like', `${key}%`).limit(2).execute();
    if (rows.length > 1) throw new RunNotFoundError(`run id '${idOrPrefix}' is ambiguous: give more of it`);
    return rows[0] && toRun(rows[0]);
  }

  async getRun(idOrPrefix: string): Promise<Run> {
    const run = await this.findRun(idOrPrefix);
    if (run === undefined) throw new RunNotFoundError(`no run '${idOrPrefix}' in ${this.location}`);
    return run;
  }

  /** Runs, newest first. */
  async listRuns(filter: RunFilter = {}): Promise<Run[]> {
    let q = this.db.selectFrom('runs').selectAll();
    if (filter.experiment !== undefined) q = q.where('experiment', '=', filter.experiment);
    if (filter.status !== undefined) q = q.where('status', '=', filter.status);
    if (!filter.includeDeleted) q = q.where('deleted_at', 'is', null);
    return (await q.orderBy('created_at', 'desc').orderBy('id').execute()).map(toRun);
  }

  async experiments(): Promise<string[]> {
    const rows = await this.db.selectFrom('runs').select('experiment').distinct().where('deleted_at', 'is', null).orderBy('experiment').execute();
    return rows.map((r) => r.experiment);
  }

  async epochs(runId: string): Promise<EpochRecord[]> {
    const rows = await this.db.selectFrom('run_epochs').select('record').where('run_id', '=', runId).orderBy('epoch').execute();
    return rows.map((r) => JSON.parse(r.record) as EpochRecord);
  }

  // ---- recording -------------------------------------------------------------------

  /** train()'s entry: a new run, trained right here, recorded as it goes. */
  async startRun(start: RunStart): Promise<OwnedRun> {
    const run = await this.createRun({
      config: start.config,
      params: { model: start.model, parameters: start.params, ...start.config },
      status: 'running',
      device: start.device,
      threads: start.threads,
      ...(start.experiment !== undefined && { experiment: start.experiment }),
      ...(start.name !== undefined && { name: start.name }),
    });
    const recorder = this.recorder(run.id);
    return {
      runId: run.id,
      epoch: (record, files) => recorder.epoch(record, files),
      finish: (result) => this.finishRun(run.id, result),
      fail: (error) => this.endRun(run.id, error instanceof TrainingAborted ? 'cancelled' : 'failed', errorText(error)),
    };
  }

  /**
   * Records epochs of an existing run. With `workerId`, every write first checks that the
   * worker still holds the run's lease (and renews it), and throws LeaseLostError if not.
   */
  recorder(runId: string, workerId?: string, leaseMs = 30_000): RunRecorder {
    return {
      runId,
      epoch: async (record, files) => {
        const artifacts: [string, Buffer][] = [];
        if (files?.checkpoint !== undefined) artifacts.push(['checkpoint.ckpt', readFileSync(files.checkpoint)]);
        if (files?.best !== undefined) artifacts.push(['best.pt', readFileSync(files.best)]);
        await this.write(async (trx) => {
          if (workerId !== undefined) await this.holdLease(trx, runId, workerId, leaseMs);
          await trx
            .insertInto('run_epochs')
            .values({ run_id: runId, epoch: record.epoch, record: JSON.stringify(record), created_at: now() })
            .onConflict((oc) => oc.columns(['run_id', 'epoch']).doUpdateSet({ record: (eb) => eb.ref('excluded.record') }))
            .execute();
          for (const [name, data] of artifacts) await this.upsertArtifact(trx, runId, name, data);
          await trx.updateTable('runs').set({ final_metrics: JSON.stringify(record) }).where('id', '=', runId).execute();
        });
      },
    };
  }

  /** Inside a write transaction: the run is still this worker's; renews the lease. */
  private async holdLease(trx: Kysely<Database>, runId: string, workerId: string, leaseMs: number): Promise<void> {
    const at = new Date();
    const held = await trx
      .updateTable('runs')
      .set({ lease_expires_at: new Date(at.getTime() + leaseMs).toISOString(), heartbeat_at: at.toISOString() })
      .where('id', '=', runId)
      .where('worker_id', '=', workerId)
      .where('status', '=', 'running')
      .executeTakeFirst();
    if (Number(held.numUpdatedRows) !== 1) throw new LeaseLostError(`worker ${workerId} no longer holds run ${runId}`);
  }

  private async upsertArtifact(trx: Kysely<Database>, runId: string, name: string, data: Buffer): Promise<void> {
    await trx
      .insertInto('run_artifacts')
      .values({ run_id: runId, name, size: data.length, sha256: sha256(data), data, created_at: now() })
      .onConflict((oc) =>
        oc.columns(['run_id', 'name']).doUpdateSet({
          size: (eb) => eb.ref('excluded.size'),
          sha256: (eb) => eb.ref('excluded.sha256'),
          data: (eb) => eb.ref('excluded.data'),
          created_at: (eb) => eb.ref('excluded.created_at'),
        }),
      )
      .execute();
  }

  async putArtifact(runId: string, name: string, data: Buffer): Promise<ArtifactInfo> {
    await this.write((trx) => this.upsertArtifact(trx, runId, name, data));
    return { name, size: data.length, sha256: sha256(data), createdAt: now() };
  }

  async artifacts(runId: string): Promise<ArtifactInfo[]> {
    const rows = await this.db.selectFrom('run_artifacts').select(['name', 'size', 'sha256', 'created_at']).where('run_id', '=', runId).orderBy('name').execute();
    return rows.map((r) => ({ name: r.name, size: Number(r.size), sha256: r.sha256, createdAt: r.created_at }));
  }

  async artifact(runId: string, name: string): Promise<Artifact | undefined> {
    const r = await this.db.selectFrom('run_artifacts').selectAll().where('run_id', '=', runId).where('name', '=', name).executeTakeFirst();
    return r && { name: r.name, size: Number(r.size), sha256: r.sha256, createdAt: r.created_at, data: Buffer.from(r.data) };
  }

  /** Marks a run finished with its final and best metrics, and stores its curves as a PNG. */
  async finishRun(runId: string, result: TrainResult, workerId?: string): Promise<void> {
    const run = await this.getRun(runId);
    const png = await trainingCurvesPng(result.history, `${run.name} (${run.id.slice(0, 8)})`);
    await this.write(async (trx) => {
      if (workerId !== undefined) await this.holdLease(trx, runId, workerId, 30_000);
      await this.upsertArtifact(trx, runId, 'curves.png', png);
      await trx
        .updateTable('runs')
        .set({
          status: 'finished',
          ended_at: now(),
          final_metrics: JSON.stringify(result.final),
          best_metrics: JSON.stringify(result.best),
          lease_expires_at: null,
          progress: null,
        })
        .where('id', '=', runId)
        .execute();
    });
  }

  /** Ends a run as failed or cancelled (a worker passes its id, so a run it lost is left alone). */
  async endRun(runId: string, status: 'failed' | 'cancelled', error: string | null, workerId?: string): Promise<void> {
    await this.write(async (trx) => {
      let q = trx.updateTable('runs').set({ status, error, ended_at: now(), lease_expires_at: null, progress: null }).where('id', '=', runId);
      if (workerId !== undefined) q = q.where('worker_id', '=', workerId);
      await q.execute();
    });
  }

  /** Cancels a queued run at once; asks a running run's worker to stop. Ended runs stay as they are. */
  async cancelRun(runId: string): Promise<Run> {
    await this.write(async (trx) => {
      await trx.updateTable('runs').set({ status: 'cancelled', ended_at: now() }).where('id', '=', runId).where('status', '=', 'queued').execute();
      await trx.updateTable('runs').set({ cancel_requested: 1 }).where('id', '=', runId).where('status', '=', 'running').execute();
    });
    return this.getRun(runId);
  }

  /** Marks a run deleted (cancelling it first if it has not ended); `gc` removes it for good. */
  async deleteRun(runId: string): Promise<void> {
    await this.cancelRun(runId);
    await this.write((trx) => trx.updateTable('runs').set({ deleted_at: now() }).where('id', '=', runId).where('deleted_at', 'is', null).execute());
  }

  /** Removes deleted runs (running ones only once their worker has stopped), with their epochs and artifacts. */
  async gc(): Promise<{ runs: number; artifacts: number; bytes: number }> {
    const freed = await this.write(async (trx) => {
      const ids = (
        await trx.selectFrom('runs').select('id').where('deleted_at', 'is not', null).where('status', '!=', 'running').execute()
      ).map((r) => r.id);
      if (ids.length === 0) return { runs: 0, artifacts: 0, bytes: 0 };
      const sizes = await trx
        .selectFrom('run_artifacts')
        .select([sql<number>`count(*)`.as('n'), sql<number>`coalesce(sum(size), 0)`.as('bytes')])
        .where('run_id', 'in', ids)
        .executeTakeFirstOrThrow();
      await trx.deleteFrom('run_artifacts').where('run_id', 'in', ids).execute();
      await trx.deleteFrom('run_epochs').where('run_id', 'in', ids).execute();
      await trx.deleteFrom('runs').where('id', 'in', ids).execute();
      return { runs: ids.length, artifacts: Number(sizes.n), bytes: Number(sizes.bytes) };
    });
    // Hand the freed pages back to the file system (outside any transaction).
    if (this.dialect === 'sqlite' && freed.runs > 0) await sql`vacuum`.execute(this.db);
    return freed;
  }

  // ---- the job queue ---------------------------------------------------------------

  /**
   * Claims the oldest queued run for `workerId`, atomically: FOR UPDATE SKIP LOCKED on
   * PostgreSQL, so concurrent workers each get a different run; SQLite's write lock does the
   * same under BEGIN IMMEDIATE. Stale runs go back to the queue first.
   */
  async claimRun(workerId: string, leaseMs = 30_000, device?: string, threads?: number): Promise<Run | undefined> {
    await this.requeueStale();
    const env = environment();
    const id = await this.write(async (trx) => {
      const row = await trx
        .selectFrom('runs')
        .select('id')
        .where('status', '=', 'queued')
        .where('deleted_at', 'is', null)
        .orderBy('created_at')
        .orderBy('id')
        .limit(1)
        .$if(this.dialect === 'postgres', (q) => q.forUpdate().skipLocked())
        .executeTakeFirst();
      if (row === undefined) return undefined;
      const at = new Date();
      await trx
        .updateTable('runs')
        .set((eb) => ({
          status: 'running',
          worker_id: workerId,
          lease_expires_at: new Date(at.getTime() + leaseMs).toISOString(),
          heartbeat_at: at.toISOString(),
          attempts: eb('attempts', '+', 1),
          started_at: eb.fn.coalesce('started_at', eb.val(at.toISOString())),
          ...env,
          ...(device !== undefined && { device }),
          ...(threads !== undefined && { threads }),
        }))
        .where('id', '=', row.id)
        .execute();
      return row.id;
    });
    return id === undefined ? undefined : this.getRun(id);
  }

  /**
   * Renews a worker's lease and reports its progress. 'lost': the run is no longer this
   * worker's (its lease went stale and the run was requeued); 'cancel': stop, the user cancelled.
   */
  async heartbeat(runId: string, workerId: string, leaseMs = 30_000, progress?: RunProgress): Promise<'ok' | 'lost' | 'cancel'> {
    const at = new Date();
    const rows = await this.write((trx) =>
      trx
        .updateTable('runs')
        .set({
          lease_expires_at: new Date(at.getTime() + leaseMs).toISOString(),
          heartbeat_at: at.toISOString(),
          ...(progress !== undefined && { progress: JSON.stringify(progress) }),
        })
        .where('id', '=', runId)
        .where('worker_id', '=', workerId)
        .where('status', '=', 'running')
        .returning('cancel_requested')
        .execute(),
    );
    const [row] = rows;
    if (row === undefined) return 'lost';
    return Number(row.cancel_requested) === 1 ? 'cancel' : 'ok';
  }

  /** Requeues running runs whose worker's lease has expired (cancelling those the user asked to cancel). */
  async requeueStale(): Promise<number> {
    const at = now();
    return this.write(async (trx) => {
      const stale = trx.updateTable('runs').where('status', '=', 'running').where('worker_id', 'is not', null).where('lease_expires_at', '<', at);
      await stale.set({ status: 'cancelled', ended_at: at, worker_id: null, lease_expires_at: null, progress: null }).where('cancel_requested', '=', 1).execute();
      const requeued = await stale.set({ status: 'queued', worker_id: null, lease_expires_at: null, progress: null }).executeTakeFirst();
      return Number(requeued.numUpdatedRows);
    });
  }
}

export function openStore(location?: string): Promise<RunStore> {
  return RunStore.open(location);
}
