// Where studies live. Every call is atomic on its own, so many workers (async tasks,
// processes, machines) can share one study: starting a trial claims it, finishing checks
// that the trial is still this worker's.
import type { Distribution } from './distributions.js';
import type { Direction, FrozenTrial, JsonValue, StudyInfo, TrialState } from './types.js';

export interface StartTrialOptions {
  worker: string;
  /** Create no new trial once the study holds this many trials that are not failed. */
  maxTrials?: number;
}

export interface TuneStorage {
  createStudy(name: string, direction: Direction, options?: { loadIfExists?: boolean }): Promise<StudyInfo>;
  getStudy(name: string): Promise<StudyInfo | undefined>;
  listStudies(): Promise<StudyInfo[]>;
  setStudyUserAttr(studyId: number, key: string, value: JsonValue): Promise<void>;
  /**
   * Claims the oldest waiting trial, or else creates a new running one; undefined when
   * `maxTrials` is reached. Atomic: two workers never receive the same trial.
   */
  startTrial(studyId: number, options: StartTrialOptions): Promise<FrozenTrial | undefined>;
  /** Adds a waiting trial whose parameters are fixed to `fixedParams` (stored in system attrs). */
  enqueueTrial(studyId: number, systemAttrs: Record<string, JsonValue>): Promise<FrozenTrial>;
  setParam(trialId: number, name: string, internal: number, distribution: Distribution): Promise<void>;
  setIntermediate(trialId: number, step: number, value: number): Promise<void>;
  setTrialAttr(trialId: number, kind: 'user' | 'system', key: string, value: JsonValue): Promise<void>;
  /** Moves a running trial to a final state; false (and nothing written) if it is no longer running. */
  finishTrial(trialId: number, state: Exclude<TrialState, 'running' | 'waiting'>, value: number | null): Promise<boolean>;
  heartbeat(trialId: number): Promise<void>;
  /**
   * Fails running trials whose heartbeat is older than `graceSeconds`, and for each, while
   * it has been retried fewer than `maxRetry` times, enqueues a waiting copy of its
   * parameters. Returns the failed trials' numbers. Atomic per trial.
   */
  failStaleTrials(studyId: number, graceSeconds: number, maxRetry: number): Promise<number[]>;
  getTrials(studyId: number, states?: readonly TrialState[]): Promise<FrozenTrial[]>;
  getTrial(trialId: number): Promise<FrozenTrial>;
  close(): Promise<void>;
}

/** The system attrs of a retry of `failed` (Optuna's RetryFailedTrialCallback layout). */
export function retryAttrs(failed: FrozenTrial): Record<string, JsonValue> {
  const history = Array.isArray(failed.systemAttrs.retry_history) ? failed.systemAttrs.retry_history : [];
  return {
    fixed_params: { ...failed.params },
    failed_trial: failed.number,
    retry_history: [...history, failed.number],
  };
}

export function retryCount(t: FrozenTrial): number {
  return Array.isArray(t.systemAttrs.retry_history) ? t.systemAttrs.retry_history.length : 0;
}
