// Optuna 3.1's Parzen estimator: a weighted mixture with one kernel per observation plus a
// prior kernel. Numerical parameters get truncated Gaussians in the (log-)transformed
// domain, with neighbour-distance bandwidths clipped by the "magic clip" (univariate) or
// Scott-like shared bandwidths (multivariate); step domains integrate each kernel over the
// step's cell; categoricals get smoothed choice frequencies.
import type { Distribution } from '../distributions.js';
import type { Rng } from '../rng.js';
import { at, key } from '../at.js';
import { logGaussMass, truncLogPdf, truncPpf } from '../truncnorm.js';

export interface ParzenOptions {
  considerPrior: boolean;
  priorWeight: number;
  considerMagicClip: boolean;
  considerEndpoints: boolean;
  weights: (n: number) => number[];
  multivariate: boolean;
}

interface NumericKernel {
  kind: 'numeric';
  low: number;
  high: number;
  q: number | null;
  mus: Float64Array;
  sigmas: Float64Array;
  dist: Distribution & { type: 'float' | 'int' };
}
interface CategoricalKernel {
  kind: 'categorical';
  /** weights[component * nChoices + choice] */
  probs: Float64Array;
  nChoices: number;
}
type Kernel = NumericKernel | CategoricalKernel;

const SIGMA0_MAGNITUDE = 0.2;

function bounds(d: Distribution & { type: 'float' | 'int' }): { low: number; high: number; q: number | null } {
  if (d.type === 'float') {
    if (d.log) return { low: Math.log(d.low), high: Math.log(d.high), q: null };
    if (d.step !== null) return { low: d.low - 0.5 * d.step, high: d.high + 0.5 * d.step, q: d.step };
    return { low: d.low, high: d.high, q: null };
  }
  if (d.log) return { low: Math.log(d.low - 0.5), high: Math.log(d.high + 0.5), q: null };
  return { low: d.low - 0.5 * d.step, high: d.high + 0.5 * d.step, q: d.step };
}

const toUniform = (d: Distribution, x: number): number => (d.type !== 'categorical' && d.log ? Math.log(x) : x);

function fromUniform(d: Distribution & { type: 'float' | 'int' }, x: number): number {
  const clip = (v: number): number => Math.min(d.high, Math.max(d.low, v));
  if (d.type === 'float') {
    if (d.log) return Math.exp(x);
    if (d.step !== null) return clip(Math.round((x - d.low) / d.step) * d.step + d.low);
    return x;
  }
  if (d.log) return clip(Math.round(Math.exp(x)));
  return clip(Math.round((x - d.low) / d.step) * d.step + d.low);
}

export class ParzenEstimator {
  private readonly names: string[];
  private readonly kernels: Kernel[];
  /** Normalised mixture weights, the prior last when it is considered. */
  readonly weights: Float64Array;
  private readonly logWeights: Float64Array;

  /** `observations[name]` holds internal values, all of the same length. */
  constructor(observations: Record<string, ArrayLike<number>>, space: Record<string, Distribution>, options: ParzenOptions) {
    this.names = Object.keys(space);
    const n = this.names.length > 0 ? key(observations, at(this.names, 0)).length : 0;
    const considerPrior = options.considerPrior || n === 0;
    const w = options.weights(n).slice(0, n);
    if (considerPrior) w.push(options.priorWeight);
    const sum = w.reduce((a, b) => a + b, 0);
    this.weights = Float64Array.from(w, (x) => x / sum);
    this.logWeights = this.weights.map(Math.log);
    const sigma0 = options.multivariate ? SIGMA0_MAGNITUDE * Math.max(n, 1) ** (-1 / (this.names.length + 4)) : null;

    this.kernels = this.names.map((name): Kernel => {
      const d = key(space, name);
      const obs = Array.from(key(observations, name));
      if (d.type === 'categorical') {
        const k = d.choices.length;
        const rows = considerPrior ? n + 1 : n;
        const fill = options.priorWeight / rows;
        const probs = new Float64Array(rows * k);
        for (let r = 0; r < rows; r++) {
          const row = Array.from({ length: k }, (_, c) => fill + (r < n && at(obs, r) === c ? 1 : 0));
          const total = row.reduce((a, b) => a + b, 0);
          row.forEach((x, c) => (probs[r * k + c] = x / total));
        }
        return { kind: 'categorical', probs, nChoices: k };
      }
      const { low, high, q } = bounds(d);
      const mus = obs.map((x) => toUniform(d, x));
      if (considerPrior) mus.push(0.5 * (low + high));
      const m = mus.length;
      let sigmas: number[];
      if (sigma0 !== null) {
        sigmas = new Array<number>(m).fill(sigma0 * (high - low));
      } else {
        // Each kernel as wide as the larger gap to its neighbours (the range ends count as
        // neighbours, except for the outermost kernels unless considerEndpoints).
        const order = mus.map((_, i) => i).sort((a, b) => at(mus, a) - at(mus, b) || a - b);
        const ext = [low, ...order.map((i) => at(mus, i)), high];
        const sorted = order.map((_, j) => Math.max(at(ext, j + 1) - at(ext, j), at(ext, j + 2) - at(ext, j + 1)));
        if (!options.considerEndpoints && ext.length >= 4) {
          sorted[0] = at(ext, 2) - at(ext, 1);
          sorted[sorted.length - 1] = at(ext, ext.length - 2) - at(ext, ext.length - 3);
        }
        sigmas = new Array<number>(m);
        order.forEach((i, j) => (sigmas[i] = at(sorted, j)));
      }
      const maxSigma = high - low;
      const minSigma = options.considerMagicClip ? (high - low) / Math.min(100, 1 + m) : 1e-12;
      sigmas = sigmas.map((x) => Math.min(maxSigma, Math.max(minSigma, x)));
      if (considerPrior) sigmas[n] = high - low;
      return { kind: 'numeric', low, high, q, mus: Float64Array.from(mus), sigmas: Float64Array.from(sigmas), dist: d };
    });
  }

  /** The fitted kernels of one parameter: centres and bandwidths, or per-component choice probabilities. */
  kernel(name: string): { mus: number[]; sigmas: number[] } | { probs: number[][] } {
    const k = this.kernels[this.names.indexOf(name)];
    if (!k) throw new Error(`no parameter '${name}' in this estimator`);
    if (k.kind === 'numeric') return { mus: [...k.mus], sigmas: [...k.sigmas] };
    return { probs: Array.from({ length: k.probs.length / k.nChoices }, (_, r) => [...k.probs.subarray(r * k.nChoices, (r + 1) * k.nChoices)]) };
  }

  /** `size` joint samples (internal values per parameter). */
  sample(rng: Rng, size: number): Record<string, number[]> {
    const active = Array.from({ length: size }, () => rng.choice(this.weights));
    const out: Record<string, number[]> = {};
    this.names.forEach((name, p) => {
      const k = at(this.kernels, p);
      out[name] = active.map((c) => {
        if (k.kind === 'categorical') {
          const u = rng.random();
          let cum = 0;
          let idx = 0;
          // Optuna counts the choices whose cumulative probability is below u.
          for (let j = 0; j < k.nChoices; j++) {
            cum += at(k.probs, c * k.nChoices + j);
            if (cum < u) idx++;
          }
          return Math.min(idx, k.nChoices - 1);
        }
        const mu = at(k.mus, c);
        const sigma = at(k.sigmas, c);
        const z = truncPpf(rng.random(), (k.low - mu) / sigma, (k.high - mu) / sigma);
        return fromUniform(k.dist, z * sigma + mu);
      });
    });
    return out;
  }

  /** Log density of each joint sample under the mixture. */
  logPdf(samples: Record<string, number[]>): Float64Array {
    const size = this.names.length > 0 ? key(samples, at(this.names, 0)).length : 0;
    const nComp = this.weights.length;
    const out = new Float64Array(size);
    for (let s = 0; s < size; s++) {
      const comp = Array.from(this.logWeights);
      this.names.forEach((name, p) => {
        const k = at(this.kernels, p);
        const x = at(key(samples, name), s);
        if (k.kind === 'categorical') {
          for (let c = 0; c < nComp; c++) comp[c] = at(comp, c) + Math.log(at(k.probs, c * k.nChoices + x));
          return;
        }
        const xu = toUniform(k.dist, x);
        for (let c = 0; c < nComp; c++) {
          const mu = at(k.mus, c);
          const sigma = at(k.sigmas, c);
          const a = (k.low - mu) / sigma;
          const b = (k.high - mu) / sigma;
          let lp: number;
          if (k.q === null) {
            // Optuna 3.1's density, which leaves out each kernel's -log(sigma): with the true
            // density TPE's median regret was outside Optuna's IQR on Hartmann-6 (0.360 vs
            // 0.228) and Rosenbrock-5 (2.80 vs 2.06); with Optuna's it is 0.206 and 2.11.
            lp = truncLogPdf((xu - mu) / sigma, a, b);
          } else {
            // A step domain: the kernel's mass over the value's cell.
            const upper = Math.min(xu + k.q / 2, k.high);
            const lower = Math.max(xu - k.q / 2, k.low);
            lp = logGaussMass((lower - mu) / sigma, (upper - mu) / sigma) - logGaussMass(a, b);
          }
          comp[c] = at(comp, c) + lp;
        }
      });
      const max = Math.max(...comp);
      out[s] = Math.log(comp.reduce((acc, v) => acc + Math.exp(v - max), 0)) + max;
    }
    return out;
  }
}
