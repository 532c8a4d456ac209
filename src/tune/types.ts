// What a study and its trials look like once stored.
import type { Distribution, ParamValue } from './distributions.js';

export type Direction = 'minimize' | 'maximize';
export type TrialState = 'running' | 'complete' | 'pruned' | 'failed' | 'waiting';
export const TRIAL_STATES: readonly TrialState[] = ['running', 'complete', 'pruned', 'failed', 'waiting'];

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface StudyInfo {
  id: number;
  name: string;
  direction: Direction;
  createdAt: Date;
  userAttrs: Record<string, JsonValue>;
}

/** A trial as stored: read-only snapshot. `params` are external values; `internalParams` what samplers work on. */
export interface FrozenTrial {
  id: number;
  studyId: number;
  number: number;
  state: TrialState;
  value: number | null;
  params: Record<string, ParamValue>;
  internalParams: Record<string, number>;
  distributions: Record<string, Distribution>;
  /** step -> value, in step order. */
  intermediate: Map<number, number>;
  userAttrs: Record<string, JsonValue>;
  systemAttrs: Record<string, JsonValue>;
  startedAt: Date | null;
  completedAt: Date | null;
  heartbeatAt: Date | null;
  worker: string | null;
}

export function lastStep(t: FrozenTrial): number | undefined {
  let last: number | undefined;
  for (const step of t.intermediate.keys()) if (last === undefined || step > last) last = step;
  return last;
}

/** Trials that have finished with a value. */
export function isFinished(t: FrozenTrial): boolean {
  return t.state === 'complete' || t.state === 'pruned';
}
