// Pruners with Optuna 3.1's semantics. A pruner looks at the trial's intermediate values
// and the study's other trials, and decides whether to stop the trial now. It may ask for
// system attrs to be stored on the trial (successive halving records the rungs it passed).
import type { Direction, FrozenTrial, JsonValue } from './types.js';
import { lastStep } from './types.js';
import { at } from './at.js';

export interface PruneDecision {
  prune: boolean;
  systemAttrs?: Record<string, JsonValue>;
}

export interface PrunerContext {
  direction: Direction;
  /** Every trial of the study, fresh at the time of the decision. */
  trials: readonly FrozenTrial[];
}

export interface Pruner {
  readonly name: string;
  prune(ctx: PrunerContext, trial: FrozenTrial): PruneDecision;
}

export class NopPruner implements Pruner {
  readonly name = 'none';
  prune(): PruneDecision {
    return { prune: false };
  }
}

/** NumPy's percentile with linear interpolation, ignoring NaN. */
export function nanPercentile(values: number[], q: number): number {
  const xs = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  const pos = (q / 100) * (xs.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, xs.length - 1);
  return at(xs, lo) + (at(xs, hi) - at(xs, lo)) * (pos - lo);
}

export interface PercentilePrunerOptions {
  /** Trials finished before pruning starts (default 5). */
  nStartupTrials?: number;
  /** Steps of each trial before it can be pruned (default 0). */
  nWarmupSteps?: number;
  /** Check every this many steps after the warm-up (default 1). */
  intervalSteps?: number;
  /** Completed trials that must have reported the step (default 1). */
  nMinTrials?: number;
}

/** Prunes a trial whose best value so far is worse than the given percentile of completed trials at the same step. */
export class PercentilePruner implements Pruner {
  readonly name: string = 'percentile';
  readonly percentile: number;
  readonly nStartupTrials: number;
  readonly nWarmupSteps: number;
  readonly intervalSteps: number;
  readonly nMinTrials: number;

  constructor(percentile: number, options: PercentilePrunerOptions = {}) {
    if (!(percentile >= 0 && percentile <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${percentile}`);
    this.percentile = percentile;
    this.nStartupTrials = options.nStartupTrials ?? 5;
    this.nWarmupSteps = options.nWarmupSteps ?? 0;
    this.intervalSteps = options.intervalSteps ?? 1;
    this.nMinTrials = options.nMinTrials ?? 1;
    const checks: [string, number, number][] = [
      ['nStartupTrials', this.nStartupTrials, 0],
      ['nWarmupSteps', this.nWarmupSteps, 0],
      ['intervalSteps', this.intervalSteps, 1],
      ['nMinTrials', this.nMinTrials, 1],
    ];
    for (const [k, v, min] of checks) if (!Number.isInteger(v) || v < min) throw new RangeError(`${k} must be an integer >= ${min}, got ${v}`);
  }

  prune(ctx: PrunerContext, trial: FrozenTrial): PruneDecision {
    const completed = ctx.trials.filter((t) => t.state === 'complete');
    if (completed.length === 0 || completed.length < this.nStartupTrials) return { prune: false };
    const step = lastStep(trial);
    if (step === undefined || step < this.nWarmupSteps) return { prune: false };
    // Only the first report at or after each interval boundary is checked.
    const boundary = Math.floor((step - this.nWarmupSteps) / this.intervalSteps) * this.intervalSteps + this.nWarmupSteps;
    let secondLast = -1;
    for (const s of trial.intermediate.keys()) if (s > secondLast && s !== step) secondLast = s;
    if (secondLast >= boundary) return { prune: false };

    const own = [...trial.intermediate.values()].filter((v) => !Number.isNaN(v));
    if (own.length === 0) return { prune: true };
    const best = ctx.direction === 'maximize' ? Math.max(...own) : Math.min(...own);
    const atStep = completed.flatMap((t) => { const v = t.intermediate.get(step); return v === undefined ? [] : [v]; });
    if (atStep.length < this.nMinTrials) return { prune: false };
    const p = nanPercentile(atStep, ctx.direction === 'maximize' ? 100 - this.percentile : this.percentile);
    if (Number.isNaN(p)) return { prune: false };
    return { prune: ctx.direction === 'maximize' ? best < p : best > p };
  }
}

/** Optuna's default pruner: the median of completed trials, 5 startup trials, no warm-up, every step. */
export class MedianPruner extends PercentilePruner {
  override readonly name = 'median';
  constructor(options: PercentilePrunerOptions = {}) {
    super(50, options);
  }
}

export interface SuccessiveHalvingOptions {
  /** Steps before the first rung; 'auto' estimates it from the first completed trial (last step / 100). */
  minResource?: number | 'auto';
  reductionFactor?: number;
  minEarlyStoppingRate?: number;
  bootstrapCount?: number;
}

const rungKey = (rung: number): string => `completed_rung_${rung}`;

/**
 * Asynchronous successive halving (Li et al., ASHA): at steps r * eta^k a trial is promoted
 * only if it is in the top 1/eta of all trials that reached that rung so far.
 */
export class SuccessiveHalvingPruner implements Pruner {
  readonly name = 'asha';
  private minResource: number | undefined;
  readonly reductionFactor: number;
  readonly minEarlyStoppingRate: number;
  readonly bootstrapCount: number;

  constructor(options: SuccessiveHalvingOptions = {}) {
    const mr = options.minResource ?? 'auto';
    if (mr !== 'auto' && (!Number.isInteger(mr) || mr < 1)) throw new RangeError(`minResource must be a positive integer or 'auto', got ${mr}`);
    this.minResource = mr === 'auto' ? undefined : mr;
    this.reductionFactor = options.reductionFactor ?? 4;
    this.minEarlyStoppingRate = options.minEarlyStoppingRate ?? 0;
    this.bootstrapCount = options.bootstrapCount ?? 0;
    if (!Number.isInteger(this.reductionFactor) || this.reductionFactor < 2) throw new RangeError(`reductionFactor must be an integer >= 2, got ${this.reductionFactor}`);
    if (!Number.isInteger(this.minEarlyStoppingRate) || this.minEarlyStoppingRate < 0) throw new RangeError(`minEarlyStoppingRate must be an integer >= 0`);
    if (!Number.isInteger(this.bootstrapCount) || this.bootstrapCount < 0) throw new RangeError(`bootstrapCount must be an integer >= 0`);
  }

  prune(ctx: PrunerContext, trial: FrozenTrial): PruneDecision {
    const step = lastStep(trial);
    if (step === undefined) return { prune: false };
    let rung = 0;
    while (rungKey(rung) in trial.systemAttrs) rung++;
    const value = trial.intermediate.get(step) ?? NaN;
    const systemAttrs: Record<string, JsonValue> = {};
    for (;;) {
      if (this.minResource === undefined) {
        const steps = ctx.trials.filter((t) => t.state === 'complete').map(lastStep).filter((s): s is number => s !== undefined);
        if (steps.length === 0) return { prune: false, systemAttrs };
        this.minResource = Math.max(Math.floor(Math.max(...steps) / 100), 1);
      }
      const promotionStep = this.minResource * this.reductionFactor ** (this.minEarlyStoppingRate + rung);
      if (step < promotionStep) return { prune: false, systemAttrs };
      if (Number.isNaN(value)) return { prune: true, systemAttrs };
      const key = rungKey(rung);
      systemAttrs[key] = value;
      const competing = ctx.trials.filter((t) => t.id !== trial.id && typeof t.systemAttrs[key] === 'number').map((t) => t.systemAttrs[key] as number);
      competing.push(value);
      if (competing.length <= this.bootstrapCount) return { prune: true, systemAttrs };
      let idx = Math.floor(competing.length / this.reductionFactor) - 1;
      if (idx === -1) idx = 0;
      competing.sort((a, b) => a - b);
      const promotable = ctx.direction === 'maximize' ? value >= at(competing, competing.length - 1 - idx) : value <= at(competing, idx);
      if (!promotable) return { prune: true, systemAttrs };
      rung++;
    }
  }
}
