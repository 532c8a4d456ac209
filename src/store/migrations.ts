// Schema migrations, applied in order inside one write transaction, with the version in
// torchlet_schema_version. Each step is written once with Kysely's schema builder, so
// SQLite and PostgreSQL get the same tables; only the binary column's type differs.
import { sql, type Kysely } from 'kysely';

export type Dialect = 'sqlite' | 'postgres';

// Migrations run before the typed tables exist, so they use an untyped handle.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

type Migration = (db: AnyDb, dialect: Dialect) => Promise<void>;

export const MIGRATIONS: readonly Migration[] = [
  // 1: runs, their epochs and their artifacts.
  async (db, dialect) => {
    await db.schema
      .createTable('runs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('experiment', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('config', 'text', (c) => c.notNull())
      .addColumn('params', 'text', (c) => c.notNull())
      .addColumn('git_commit', 'text')
      .addColumn('git_dirty', 'integer')
      .addColumn('torchlet_version', 'text')
      .addColumn('libtorch_version', 'text')
      .addColumn('host', 'text')
      .addColumn('device', 'text')
      .addColumn('threads', 'integer')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('ended_at', 'text')
      .addColumn('final_metrics', 'text')
      .addColumn('best_metrics', 'text')
      .addColumn('error', 'text')
      .addColumn('deleted_at', 'text')
      .execute();
    await db.schema.createIndex('runs_experiment').on('runs').columns(['experiment', 'created_at']).execute();
    await db.schema
      .createTable('run_epochs')
      .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
      .addColumn('epoch', 'integer', (c) => c.notNull())
      .addColumn('record', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('run_epochs_pk', ['run_id', 'epoch'])
      .execute();
    await db.schema
      .createTable('run_artifacts')
      .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('size', 'integer', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('data', dialect === 'postgres' ? 'bytea' : 'blob', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('run_artifacts_pk', ['run_id', 'name'])
      .execute();
  },
  // 2: the job queue: a lease held by a worker and renewed by its heartbeat, cancellation, progress.
  async (db) => {
    for (const [name, type] of [
      ['worker_id', 'text'],
      ['lease_expires_at', 'text'],
      ['heartbeat_at', 'text'],
      ['progress', 'text'],
    ] as const) {
      await db.schema.alterTable('runs').addColumn(name, type).execute();
    }
    await db.schema.alterTable('runs').addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('runs').addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.createIndex('runs_queue').on('runs').columns(['status', 'created_at']).execute();
  },
  // 3: studies and trials of `torchlet tune`; a trial links the run that recorded its training.
  async (db) => {
    await db.schema
      .createTable('tune_studies')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('direction', 'text', (c) => c.notNull())
      .addColumn('user_attrs', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('tune_trials')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('study_id', 'integer', (c) => c.notNull().references('tune_studies.id').onDelete('cascade'))
      .addColumn('number', 'integer', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('value', 'double precision')
      .addColumn('params', 'text', (c) => c.notNull())
      .addColumn('distributions', 'text', (c) => c.notNull())
      .addColumn('intermediate', 'text', (c) => c.notNull())
      .addColumn('user_attrs', 'text', (c) => c.notNull())
      .addColumn('system_attrs', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text')
      .addColumn('completed_at', 'text')
      .addColumn('heartbeat_at', 'text')
      .addColumn('worker', 'text')
      .addColumn('run_id', 'text')
      .addUniqueConstraint('tune_trials_number', ['study_id', 'number'])
      .execute();
    await db.schema.createIndex('tune_trials_state').on('tune_trials').columns(['study_id', 'state']).execute();
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** The schema version of a store: 0 when the version table does not exist yet. */
export async function schemaVersion(db: AnyDb): Promise<number> {
  const tables = await db.introspection.getTables();
  if (!tables.some((t) => t.name === 'torchlet_schema_version')) return 0;
  const row = await db.selectFrom('torchlet_schema_version').select(sql<number>`max(version)`.as('v')).executeTakeFirst();
  return Number(row?.v ?? 0);
}

/** Applies the migrations after `from` up to `to`, inside the caller's write transaction. */
export async function applyMigrations(db: AnyDb, dialect: Dialect, from: number, to = SCHEMA_VERSION): Promise<void> {
  if (from === 0) {
    await db.schema
      .createTable('torchlet_schema_version')
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('applied_at', 'text', (c) => c.notNull())
      .execute();
  }
  for (const [v, migration] of MIGRATIONS.entries()) {
    if (v < from || v >= to) continue;
    await migration(db, dialect);
    await db.insertInto('torchlet_schema_version').values({ version: v + 1, applied_at: new Date().toISOString() }).execute();
  }
}
