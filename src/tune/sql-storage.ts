// Studies and trials in the run store (SQLite or PostgreSQL, through its Kysely layer and
// migrations), so that processes on one machine or many share a study, as Optuna's RDB
// storage does. Every change is one write transaction; creating or claiming a trial also
// takes a lock (SQLite's BEGIN IMMEDIATE, a PostgreSQL advisory lock) so that two workers
// never get the same trial or the same trial number.
import { sql, type Kysely, type Selectable } from 'kysely';
import type { RunStore } from '../store/store.js';
import type { Database, TuneStudiesTable, TuneTrialsTable } from '../store/schema.js';
import { toExternal, type Distribution, type ParamValue } from './distributions.js';
import { retryAttrs, retryCount, type StartTrialOptions, type TuneStorage } from './storage.js';
import type { Direction, FrozenTrial, JsonValue, StudyInfo, TrialState } from './types.js';

const TRIAL_LOCK = 74659;
const now = (): string => new Date().toISOString();

function toStudy(row: Selectable<TuneStudiesTable>): StudyInfo {
  return {
    id: Number(row.id),
    name: row.name,
    direction: row.direction as Direction,
    createdAt: new Date(row.created_at),
    userAttrs: JSON.parse(row.user_attrs) as Record<string, JsonValue>,
  };
}

function toTrial(row: Selectable<TuneTrialsTable>): FrozenTrial {
  const internalParams = JSON.parse(row.params) as Record<string, number>;
  const distributions = JSON.parse(row.distributions) as Record<string, Distribution>;
  const params: Record<string, ParamValue> = {};
  for (const [name, v] of Object.entries(internalParams)) {
    const d = distributions[name];
    if (d) params[name] = toExternal(d, v);
  }
  // JSON has no NaN: a NaN report is stored as null.
  const steps = JSON.parse(row.intermediate) as [number, number | null][];
  return {
    id: Number(row.id),
    studyId: Number(row.study_id),
    number: Number(row.number),
    state: row.state as TrialState,
    value: row.value === null ? null : Number(row.value),
    params,
    internalParams,
    distributions,
    intermediate: new Map(steps.map(([s, v]) => [s, v ?? NaN])),
    userAttrs: JSON.parse(row.user_attrs) as Record<string, JsonValue>,
    systemAttrs: JSON.parse(row.system_attrs) as Record<string, JsonValue>,
    startedAt: row.started_at === null ? null : new Date(row.started_at),
    completedAt: row.completed_at === null ? null : new Date(row.completed_at),
    heartbeatAt: row.heartbeat_at === null ? null : new Date(row.heartbeat_at),
    worker: row.worker,
  };
}

export class SqlTuneStorage implements TuneStorage {
  readonly store: RunStore;

  constructor(store: RunStore) {
    this.store = store;
  }

  private get db(): Kysely<Database> {
    return this.store.db;
  }

  /** Serialises trial creation and claiming on PostgreSQL (SQLite's BEGIN IMMEDIATE already does). */
  private async lock(trx: Kysely<Database>): Promise<void> {
    if (this.store.dialect === 'postgres') await sql`select pg_advisory_xact_lock(${TRIAL_LOCK})`.execute(trx);
  }

  async createStudy(name: string, direction: Direction, options: { loadIfExists?: boolean } = {}): Promise<StudyInfo> {
    return this.store.write(async (trx) => {
      await this.lock(trx);
      const existing = await trx.selectFrom('tune_studies').selectAll().where('name', '=', name).executeTakeFirst();
      if (existing) {
        if (!options.loadIfExists) throw new Error(`study '${name}' already exists (pass loadIfExists to join it)`);
        if (existing.direction !== direction) throw new Error(`study '${name}' exists with direction ${existing.direction}, not ${direction}`);
        return toStudy(existing);
      }
      const max = await trx.selectFrom('tune_studies').select(sql<number | null>`max(id)`.as('m')).executeTakeFirst();
      const row: TuneStudiesTable = { id: Number(max?.m ?? 0) + 1, name, direction, user_attrs: '{}', created_at: now() };
      await trx.insertInto('tune_studies').values(row).execute();
      return toStudy(row);
    });
  }

  async getStudy(name: string): Promise<StudyInfo | undefined> {
    const row = await this.db.selectFrom('tune_studies').selectAll().where('name', '=', name).executeTakeFirst();
    return row && toStudy(row);
  }

  async listStudies(): Promise<StudyInfo[]> {
    return (await this.db.selectFrom('tune_studies').selectAll().orderBy('id').execute()).map(toStudy);
  }

  async setStudyUserAttr(studyId: number, key: string, value: JsonValue): Promise<void> {
    await this.store.write(async (trx) => {
      const row = await trx.selectFrom('tune_studies').select('user_attrs').where('id', '=', studyId).executeTakeFirst();
      if (!row) throw new Error(`no study with id ${studyId}`);
      const attrs = { ...(JSON.parse(row.user_attrs) as Record<string, JsonValue>), [key]: value };
      await trx.updateTable('tune_studies').set({ user_attrs: JSON.stringify(attrs) }).where('id', '=', studyId).execute();
    });
  }

  private async insertTrial(trx: Kysely<Database>, studyId: number, state: TrialState, systemAttrs: Record<string, JsonValue>, worker: string | null): Promise<FrozenTrial> {
    const count = await trx.selectFrom('tune_trials').select(sql<number>`count(*)`.as('n')).where('study_id', '=', studyId).executeTakeFirst();
    const max = await trx.selectFrom('tune_trials').select(sql<number | null>`max(id)`.as('m')).executeTakeFirst();
    const at = now();
    const row: TuneTrialsTable = {
      id: Number(max?.m ?? 0) + 1,
      study_id: studyId,
      number: Number(count?.n ?? 0),
      state,
      value: null,
      params: '{}',
      distributions: '{}',
      intermediate: '[]',
      user_attrs: '{}',
      system_attrs: JSON.stringify(systemAttrs),
      started_at: state === 'running' ? at : null,
      completed_at: null,
      heartbeat_at: state === 'running' ? at : null,
      worker,
      run_id: null,
    };
    await trx.insertInto('tune_trials').values(row).execute();
    return toTrial(row);
  }

  async startTrial(studyId: number, options: StartTrialOptions): Promise<FrozenTrial | undefined> {
    return this.store.write(async (trx) => {
      await this.lock(trx);
      const waiting = await trx
        .selectFrom('tune_trials')
        .selectAll()
        .where('study_id', '=', studyId)
        .where('state', '=', 'waiting')
        .orderBy('number')
        .limit(1)
        .executeTakeFirst();
      const at = now();
      if (waiting) {
        await trx.updateTable('tune_trials').set({ state: 'running', started_at: at, heartbeat_at: at, worker: options.worker }).where('id', '=', waiting.id).execute();
        return toTrial({ ...waiting, state: 'running', started_at: at, heartbeat_at: at, worker: options.worker });
      }
      if (options.maxTrials !== undefined) {
        const live = await trx
          .selectFrom('tune_trials')
          .select(sql<number>`count(*)`.as('n'))
          .where('study_id', '=', studyId)
          .where('state', '!=', 'failed')
          .executeTakeFirst();
        if (Number(live?.n ?? 0) >= options.maxTrials) return undefined;
      }
      return this.insertTrial(trx, studyId, 'running', {}, options.worker);
    });
  }

  async enqueueTrial(studyId: number, systemAttrs: Record<string, JsonValue>): Promise<FrozenTrial> {
    return this.store.write(async (trx) => {
      await this.lock(trx);
      return this.insertTrial(trx, studyId, 'waiting', systemAttrs, null);
    });
  }

  /** Read-modify-write of one running trial's row. */
  private async updateRunning(trialId: number, change: (row: Selectable<TuneTrialsTable>) => Partial<TuneTrialsTable>): Promise<void> {
    await this.store.write(async (trx) => {
      const row = await trx.selectFrom('tune_trials').selectAll().where('id', '=', trialId).executeTakeFirst();
      if (!row) throw new Error(`no trial with id ${trialId}`);
      if (row.state !== 'running') throw new Error(`trial ${row.number} is ${row.state}, not running`);
      await trx.updateTable('tune_trials').set(change(row)).where('id', '=', trialId).execute();
    });
  }

  async setParam(trialId: number, name: string, internal: number, distribution: Distribution): Promise<void> {
    await this.updateRunning(trialId, (row) => ({
      params: JSON.stringify({ ...(JSON.parse(row.params) as object), [name]: internal }),
      distributions: JSON.stringify({ ...(JSON.parse(row.distributions) as object), [name]: distribution }),
    }));
  }

  async setIntermediate(trialId: number, step: number, value: number): Promise<void> {
    await this.updateRunning(trialId, (row) => {
      const steps = (JSON.parse(row.intermediate) as [number, number | null][]).filter(([s]) => s !== step);
      steps.push([step, Number.isNaN(value) ? null : value]);
      steps.sort((a, b) => a[0] - b[0]);
      return { intermediate: JSON.stringify(steps) };
    });
  }

  async setTrialAttr(trialId: number, kind: 'user' | 'system', key: string, value: JsonValue): Promise<void> {
    await this.store.write(async (trx) => {
      const row = await trx.selectFrom('tune_trials').select(['user_attrs', 'system_attrs']).where('id', '=', trialId).executeTakeFirst();
      if (!row) throw new Error(`no trial with id ${trialId}`);
      const column = kind === 'user' ? 'user_attrs' : 'system_attrs';
      const attrs = { ...(JSON.parse(row[column]) as Record<string, JsonValue>), [key]: value };
      await trx.updateTable('tune_trials').set({ [column]: JSON.stringify(attrs) }).where('id', '=', trialId).execute();
    });
  }

  /** Links a trial to the run that recorded its training. */
  async setTrialRun(trialId: number, runId: string): Promise<void> {
    await this.store.write((trx) => trx.updateTable('tune_trials').set({ run_id: runId }).where('id', '=', trialId).execute());
  }

  async finishTrial(trialId: number, state: Exclude<TrialState, 'running' | 'waiting'>, value: number | null): Promise<boolean> {
    const result = await this.store.write((trx) =>
      trx.updateTable('tune_trials').set({ state, value, completed_at: now() }).where('id', '=', trialId).where('state', '=', 'running').executeTakeFirst(),
    );
    return Number(result.numUpdatedRows) > 0;
  }

  async heartbeat(trialId: number): Promise<void> {
    await this.store.write((trx) => trx.updateTable('tune_trials').set({ heartbeat_at: now() }).where('id', '=', trialId).where('state', '=', 'running').execute());
  }

  async failStaleTrials(studyId: number, graceSeconds: number, maxRetry: number): Promise<number[]> {
    const cutoff = new Date(Date.now() - graceSeconds * 1000).toISOString();
    return this.store.write(async (trx) => {
      await this.lock(trx);
      const stale = await trx
        .selectFrom('tune_trials')
        .selectAll()
        .where('study_id', '=', studyId)
        .where('state', '=', 'running')
        .where('heartbeat_at', '<', cutoff)
        .orderBy('number')
        .execute();
      for (const row of stale) {
        await trx.updateTable('tune_trials').set({ state: 'failed', completed_at: now() }).where('id', '=', row.id).execute();
        const failed = toTrial(row);
        failed.systemAttrs.fail_reason = 'no heartbeat';
        await trx.updateTable('tune_trials').set({ system_attrs: JSON.stringify(failed.systemAttrs) }).where('id', '=', row.id).execute();
        if (retryCount(failed) < maxRetry) await this.insertTrial(trx, studyId, 'waiting', retryAttrs(failed), null);
      }
      return stale.map((r) => Number(r.number));
    });
  }

  async getTrials(studyId: number, states?: readonly TrialState[]): Promise<FrozenTrial[]> {
    let q = this.db.selectFrom('tune_trials').selectAll().where('study_id', '=', studyId);
    if (states) q = q.where('state', 'in', [...states]);
    return (await q.orderBy('number').execute()).map(toTrial);
  }

  async getTrial(trialId: number): Promise<FrozenTrial> {
    const row = await this.db.selectFrom('tune_trials').selectAll().where('id', '=', trialId).executeTakeFirst();
    if (!row) throw new Error(`no trial with id ${trialId}`);
    return toTrial(row);
  }

  /** The run id recorded for each trial number. */
  async trialRuns(studyId: number): Promise<Map<number, string>> {
    const rows = await this.db.selectFrom('tune_trials').select(['number', 'run_id']).where('study_id', '=', studyId).where('run_id', 'is not', null).execute();
    return new Map(rows.map((r) => [Number(r.number), r.run_id ?? '']));
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}
