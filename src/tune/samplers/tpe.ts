// The Tree-structured Parzen Estimator (Bergstra et al. 2011), with Optuna 3.1's rules and
// defaults: random search for the first 10 trials; then observations are split into the
// best gamma(n) = min(ceil(0.1 n), 25) and the rest (pruned trials ranked by how far they
// got, then their last value); 24 candidates are drawn from the good trials' estimator l(x)
// and the one maximising l(x) / g(x) is taken. Multivariate mode models the intersection
// search space jointly; the constant liar counts running trials as the worst observations
// so that parallel workers spread out.
import { isSingle, sameDistribution, type Distribution } from '../distributions.js';
import { Rng, randomSeed } from '../rng.js';
import type { FrozenTrial } from '../types.js';
import { ParzenEstimator, type ParzenOptions } from './parzen.js';
import { sampleUniform } from './random.js';
import type { Sampler, SamplerContext } from './sampler.js';
import { at, key } from '../at.js';

export function defaultGamma(n: number): number {
  return Math.min(Math.ceil(0.1 * n), 25);
}

/** Older observations ramp down in weight once there are more than 25. */
export function defaultWeights(n: number): number[] {
  if (n === 0) return [];
  if (n < 25) return new Array<number>(n).fill(1);
  const rampLen = n - 25;
  const ramp = Array.from({ length: rampLen }, (_, i) => (rampLen === 1 ? 1 / n : 1 / n + (i * (1 - 1 / n)) / (rampLen - 1)));
  return [...ramp, ...new Array<number>(25).fill(1)];
}

export interface TPESamplerOptions {
  seed?: number;
  nStartupTrials?: number;
  nEiCandidates?: number;
  gamma?: (n: number) => number;
  weights?: (n: number) => number[];
  considerPrior?: boolean;
  priorWeight?: number;
  considerMagicClip?: boolean;
  considerEndpoints?: boolean;
  /** Model the parameters jointly (Optuna's multivariate=True). */
  multivariate?: boolean;
  /** Treat running trials as bad observations, for parallel workers. */
  constantLiar?: boolean;
}

interface Observations {
  /** Per trial: [rank key 1, rank key 2], smaller is better. */
  scores: [number, number][];
  values: Record<string, (number | undefined)[]>;
}

export class TPESampler implements Sampler {
  readonly name = 'tpe';
  readonly seed: number;
  readonly nStartupTrials: number;
  readonly nEiCandidates: number;
  readonly multivariate: boolean;
  readonly constantLiar: boolean;
  private readonly gamma: (n: number) => number;
  private readonly parzen: ParzenOptions;

  constructor(options: TPESamplerOptions = {}) {
    this.seed = options.seed ?? randomSeed();
    this.nStartupTrials = options.nStartupTrials ?? 10;
    this.nEiCandidates = options.nEiCandidates ?? 24;
    this.gamma = options.gamma ?? defaultGamma;
    this.multivariate = options.multivariate ?? false;
    this.constantLiar = options.constantLiar ?? false;
    this.parzen = {
      considerPrior: options.considerPrior ?? true,
      priorWeight: options.priorWeight ?? 1,
      considerMagicClip: options.considerMagicClip ?? true,
      considerEndpoints: options.considerEndpoints ?? false,
      weights: options.weights ?? defaultWeights,
      multivariate: this.multivariate,
    };
    for (const [k, v] of [['nStartupTrials', this.nStartupTrials], ['nEiCandidates', this.nEiCandidates]] as const) {
      if (!Number.isInteger(v) || v < (k === 'nEiCandidates' ? 1 : 0)) throw new RangeError(`TPE ${k} must be a ${k === 'nEiCandidates' ? 'positive' : 'non-negative'} integer, got ${v}`);
    }
  }

  /** Optuna's _get_observation_pairs: (-step, signed value) for each finished (and, lying, running) trial. */
  private observe(ctx: SamplerContext, names: string[]): Observations {
    const sign = ctx.direction === 'minimize' ? 1 : -1;
    const scores: [number, number][] = [];
    const values: Record<string, (number | undefined)[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (const t of ctx.trials) {
      let score: [number, number];
      if (t.state === 'complete') {
        if (t.value === null) continue;
        score = [-Infinity, sign * t.value];
      } else if (t.state === 'pruned') {
        let step = -Infinity;
        for (const s of t.intermediate.keys()) step = Math.max(step, s);
        if (step === -Infinity) score = [1, 0];
        else {
          const v = t.intermediate.get(step) ?? NaN;
          score = [-step, Number.isNaN(v) ? Infinity : sign * v];
        }
      } else if (t.state === 'running' && this.constantLiar) {
        score = [Infinity, Infinity];
      } else continue;
      scores.push(score);
      for (const n of names) key(values, n).push(t.internalParams[n]);
    }
    return { scores, values };
  }

  private split(scores: [number, number][], nBelow: number): [number[], number[]] {
    const order = Array.from(scores.keys()).sort((a, b) => {
      const [a0, a1] = at(scores, a);
      const [b0, b1] = at(scores, b);
      return a0 !== b0 ? (a0 < b0 ? -1 : 1) : a1 !== b1 ? (a1 < b1 || Number.isNaN(b1) ? -1 : 1) : a - b;
    });
    return [order.slice(0, nBelow).sort((a, b) => a - b), order.slice(nBelow).sort((a, b) => a - b)];
  }

  /** Fits l(x) and g(x) over `space` and returns the best of the candidates drawn from l. */
  private sampleSpace(ctx: SamplerContext, space: Record<string, Distribution>, rng: Rng): Record<string, number> | undefined {
    const names = Object.keys(space);
    const { scores, values } = this.observe(ctx, names);
    const n = scores.filter(([s]) => s < Infinity).length;
    if (n < this.nStartupTrials) return undefined;
    const [below, above] = this.split(scores, this.gamma(n));
    // A trial that lacks one of the parameters (a running one, mid-suggest) is left out.
    const columns = names.map((nm) => key(values, nm));
    const pick = (idx: number[]): Record<string, number[]> => {
      const rows = idx.flatMap((i) => {
        const row = columns.map((col) => col[i]);
        return row.every((v) => v !== undefined) ? [row as number[]] : [];
      });
      return Object.fromEntries(names.map((nm, p) => [nm, rows.map((row) => at(row, p))]));
    };
    const l = new ParzenEstimator(pick(below), space, this.parzen);
    const g = new ParzenEstimator(pick(above), space, this.parzen);
    const candidates = l.sample(rng, this.nEiCandidates);
    const ll = l.logPdf(candidates);
    const lg = g.logPdf(candidates);
    let best = 0;
    for (let i = 1; i < ll.length; i++) if (at(ll, i) - at(lg, i) > at(ll, best) - at(lg, best)) best = i;
    return Object.fromEntries(names.map((nm) => [nm, at(key(candidates, nm), best)]));
  }

  inferRelativeSearchSpace(ctx: SamplerContext): Record<string, Distribution> {
    if (!this.multivariate) return {};
    // Optuna's IntersectionSearchSpace(include_pruned=True): parameters every finished
    // trial has, with the same distribution.
    let space: Map<string, Distribution> | undefined;
    for (const t of ctx.trials) {
      if (t.state !== 'complete' && t.state !== 'pruned') continue;
      if (space === undefined) space = new Map(Object.entries(t.distributions));
      else {
        for (const [name, d] of space) {
          const other = t.distributions[name];
          if (!other || !sameDistribution(d, other)) space.delete(name);
        }
      }
    }
    const names = [...(space?.keys() ?? [])].sort();
    return Object.fromEntries(names.flatMap((name) => {
      const d = space?.get(name);
      return d && !isSingle(d) ? [[name, d]] : [];
    }));
  }

  sampleRelative(ctx: SamplerContext, trial: FrozenTrial, space: Record<string, Distribution>): Record<string, number> {
    if (Object.keys(space).length === 0) return {};
    return this.sampleSpace(ctx, space, new Rng(this.seed, 'tpe-relative', trial.number)) ?? {};
  }

  sampleIndependent(ctx: SamplerContext, trial: FrozenTrial, name: string, distribution: Distribution): number {
    const rng = new Rng(this.seed, 'tpe', trial.number, name);
    return this.sampleSpace(ctx, { [name]: distribution }, rng)?.[name] ?? sampleUniform(rng, distribution);
  }
}
