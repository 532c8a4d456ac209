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

export interface Database {
  runs: RunsTable;
  run_epochs: EpochsTable;
  run_artifacts: ArtifactsTable;
  torchlet_schema_version: SchemaVersionTable;
}
