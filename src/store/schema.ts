// The run store's tables, as Kysely sees them. JSON lives in text columns and times are
// ISO-8601 UTC strings, so one set of queries reads the same from SQLite and PostgreSQL.

export type RunStatus = 'queued' | 'running' | 'finished' | 'failed' | 'cancelled';
export const RUN_STATUSES: readonly RunStatus[] = ['queued', 'running', 'finished', 'failed', 'cancelled'];

export interface RunsTable {
  id: string;
  name: string;
  experiment: string;
  status: RunStatus;
  /** The config in the schema of `torchlet train --config` (JSON). */
  config: string;
  /** The fully resolved recipe and run facts: model, parameters (JSON). */
  params: string;
  git_commit: string | null;
  /** 0 or 1; null outside a git checkout. */
  git_dirty: number | null;
  torchlet_version: string | null;
  libtorch_version: string | null;
  host: string | null;
  device: string | null;
  threads: number | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  /** The last epoch's EpochRecord (JSON). */
  final_metrics: string | null;
  /** { epoch, accuracy, by } (JSON). */
  best_metrics: string | null;
  error: string | null;
  deleted_at: string | null;
  // Schema 2: the job queue.
  worker_id: string | null;
  lease_expires_at: string | null;
  heartbeat_at: string | null;
  attempts: number;
  cancel_requested: number;
  /** The latest step progress (JSON), written with each heartbeat. */
  progress: string | null;
}

export interface EpochsTable {
  run_id: string;
  epoch: number;
  /** Every field of the EpochRecord (JSON). */
  record: string;
  created_at: string;
}

export interface ArtifactsTable {
  run_id: string;
  name: string;
  size: number;
  sha256: string;
  data: Buffer;
  created_at: string;
}

export interface SchemaVersionTable {
  version: number;
  applied_at: string;
}

/** A study of `torchlet tune` (schema 3). */
export interface TuneStudiesTable {
  id: number;
  name: string;
  direction: string;
  /** JSON object. */
  user_attrs: string;
  created_at: string;
}

/** A trial of a study: its state, parameters and values; run_id links the run that recorded its training. */
export interface TuneTrialsTable {
  id: number;
  study_id: number;
  /** 0, 1, 2, ... within the study. */
  number: number;
  state: string;
  value: number | null;
  /** JSON: parameter name -> internal value (a categorical's index). */
  params: string;
  /** JSON: parameter name -> distribution. */
  distributions: string;
  /** JSON: [[step, value or null for NaN], ...] in step order. */
  intermediate: string;
  user_attrs: string;
  system_attrs: string;
  started_at: string | null;
  completed_at: string | null;
  heartbeat_at: string | null;
  worker: string | null;
  run_id: string | null;
}

export interface Database {
  runs: RunsTable;
  run_epochs: EpochsTable;
  run_artifacts: ArtifactsTable;
  torchlet_schema_version: SchemaVersionTable;
  tune_studies: TuneStudiesTable;
  tune_trials: TuneTrialsTable;
}
