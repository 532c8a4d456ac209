// Exhaustive search over given values, visiting the grid in a seeded random order (as
// Optuna's GridSampler); parallel workers skip points another trial already holds.
import { contains, toInternal, type Choice, type Distribution } from '../distributions.js';
import { SearchSpaceError } from '../distributions.js';
import { Rng, randomSeed } from '../rng.js';
import type { FrozenTrial, JsonValue } from '../types.js';
import type { Sampler, SamplerContext } from './sampler.js';
import { at, key } from '../at.js';

const GRID_ID = 'grid_id';

export interface GridSamplerOptions {
  seed?: number;
}

export class GridSampler implements Sampler {
  readonly name = 'grid';
  readonly seed: number;
  private readonly names: string[];
  private readonly values: Choice[][];
  readonly size: number;

  constructor(space: Record<string, readonly Choice[]>, options: GridSamplerOptions = {}) {
    this.seed = options.seed ?? randomSeed();
    this.names = Object.keys(space).sort();
    if (this.names.length === 0) throw new SearchSpaceError('the grid has no parameters');
    this.values = this.names.map((n) => {
      const v = key(space, n);
      if (!Array.isArray(v) || v.length === 0) throw new SearchSpaceError(`parameter '${n}': grid values must be a non-empty list`);
      return [...v];
    });
    this.size = this.values.reduce((n, v) => n * v.length, 1);
  }

  /** The grid point with index `id` (mixed radix over the sorted parameter names). */
  point(id: number): Record<string, Choice> {
    const out: Record<string, Choice> = {};
    for (let i = this.names.length - 1; i >= 0; i--) {
      const vals = at(this.values, i);
      out[at(this.names, i)] = at(vals, id % vals.length);
      id = Math.floor(id / vals.length);
    }
    return out;
  }

  private taken(ctx: SamplerContext): Set<number> {
    const ids = new Set<number>();
    for (const t of ctx.trials) {
      const id = t.systemAttrs[GRID_ID];
      if (typeof id === 'number' && t.state !== 'failed') ids.add(id);
    }
    return ids;
  }

  beforeTrial(ctx: SamplerContext, trial: FrozenTrial): Record<string, JsonValue> {
    const taken = this.taken(ctx);
    // The free points in a seeded order; trials that started before this one but have not
    // stored their point yet take the first ones, so concurrent starts do not collide.
    const rng = new Rng(this.seed, 'grid');
    const order = Array.from({ length: this.size }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [at(order, j), at(order, i)];
    }
    const free = order.filter((id) => !taken.has(id));
    const ahead = ctx.trials.filter((t) => t.state === 'running' && t.number < trial.number && !(GRID_ID in t.systemAttrs)).length;
    // Every point taken (workers racing at the end): repeat one, as Optuna does.
    const id = ahead < free.length ? at(free, ahead) : at(order, trial.number % this.size);
    return { [GRID_ID]: id };
  }

  sampleIndependent(_ctx: SamplerContext, trial: FrozenTrial, name: string, distribution: Distribution): number {
    const i = this.names.indexOf(name);
    if (i < 0) throw new SearchSpaceError(`parameter '${name}' is not in the grid (${this.names.join(', ')})`);
    const id = trial.systemAttrs[GRID_ID];
    if (typeof id !== 'number') throw new Error(`trial ${trial.number} has no grid point`);
    const value = key(this.point(id), name);
    const internal = toInternal(distribution, value);
    if (!contains(distribution, internal)) throw new SearchSpaceError(`parameter '${name}': grid value ${JSON.stringify(value)} is outside its distribution`);
    return internal;
  }

  isExhausted(ctx: SamplerContext): boolean {
    return this.taken(ctx).size >= this.size;
  }
}
