// Uniform random search, in each distribution's own scale (log, step grid, or choice).
import type { Distribution } from '../distributions.js';
import { Rng, randomSeed } from '../rng.js';
import type { FrozenTrial } from '../types.js';
import type { Sampler, SamplerContext } from './sampler.js';

/** Draws one internal value uniformly, as Optuna's RandomSampler (via _SearchSpaceTransform) does. */
export function sampleUniform(rng: Rng, d: Distribution): number {
  if (d.type === 'categorical') return rng.int(d.choices.length);
  if (d.log) {
    const lo = d.type === 'int' ? d.low - 0.5 : d.low;
    const hi = d.type === 'int' ? d.high + 0.5 : d.high;
    const x = Math.exp(rng.uniform(Math.log(lo), Math.log(hi)));
    return d.type === 'int' ? Math.min(d.high, Math.max(d.low, Math.round(x))) : Math.min(d.high, Math.max(d.low, x));
  }
  const step = d.type === 'int' ? d.step : d.step;
  if (step === null) return rng.uniform(d.low, d.high);
  const x = rng.uniform(d.low - step / 2, d.high + step / 2);
  return Math.min(d.high, Math.max(d.low, Math.round((x - d.low) / step) * step + d.low));
}

export interface RandomSamplerOptions {
  seed?: number;
}

export class RandomSampler implements Sampler {
  readonly name = 'random';
  readonly seed: number;

  constructor(options: RandomSamplerOptions = {}) {
    this.seed = options.seed ?? randomSeed();
  }

  sampleIndependent(_ctx: SamplerContext, trial: FrozenTrial, name: string, distribution: Distribution): number {
    return sampleUniform(new Rng(this.seed, 'random', trial.number, name), distribution);
  }
}
