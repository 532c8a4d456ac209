// The sampler interface (Optuna's BaseSampler): an optional joint ("relative") sample at the
// start of a trial, and an independent sample for every parameter the joint one left out.
// Samplers work on internal values (a categorical's index) and are synchronous: the study
// hands them a snapshot of the trials taken when the trial started.
import type { Distribution } from '../distributions.js';
import type { Direction, FrozenTrial, JsonValue } from '../types.js';

export interface SamplerContext {
  direction: Direction;
  /** Every trial of the study, in number order, as of the start of this trial. */
  trials: readonly FrozenTrial[];
}

export interface Sampler {
  readonly name: string;
  /** System attrs to store on a new trial before its objective runs (the grid sampler's point). */
  beforeTrial?(ctx: SamplerContext, trial: FrozenTrial): Record<string, JsonValue>;
  inferRelativeSearchSpace?(ctx: SamplerContext, trial: FrozenTrial): Record<string, Distribution>;
  sampleRelative?(ctx: SamplerContext, trial: FrozenTrial, space: Record<string, Distribution>): Record<string, number>;
  sampleIndependent(ctx: SamplerContext, trial: FrozenTrial, name: string, distribution: Distribution): number;
  /** True once the sampler has nothing new to propose (a finished grid): optimize stops. */
  isExhausted?(ctx: SamplerContext): boolean;
}
