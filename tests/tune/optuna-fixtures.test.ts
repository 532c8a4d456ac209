// torchlet's pruners and Parzen estimator against Debian's Optuna 3.1, through fixtures
// written by scripts/fixtures/gen_tune_fixtures.py.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createStudy, MedianPruner, PercentilePruner, RandomSampler, SuccessiveHalvingPruner, TrialPruned, type Distribution, type Pruner } from '../../src/tune/index.js';
import { ParzenEstimator } from '../../src/tune/samplers/parzen.js';
import { defaultWeights } from '../../src/tune/samplers/tpe.js';

interface PrunerCase {
  name: string;
  direction: 'minimize' | 'maximize';
  values: (number | 'nan' | null)[][];
  prunedAt: (number | null)[];
}
interface ParzenCase {
  multivariate: boolean;
  space: Record<string, Distribution>;
  observations: Record<string, number[]>;
  weights: number[];
  kernels: Record<string, { mus: number[] | null; sigmas: number[] | null; categorical: number[][] | null }>;
  probes: Record<string, number[]>;
  logPdf: number[];
}

const fixture = <T>(name: string): { optuna: string; cases: T[] } =>
  JSON.parse(readFileSync(new URL(`../fixtures/tune/${name}`, import.meta.url), 'utf8')) as { optuna: string; cases: T[] };

const PRUNERS: Record<string, () => Pruner> = {
  'median default': () => new MedianPruner(),
  'median warmup 2 interval 2 startup 3': () => new MedianPruner({ nStartupTrials: 3, nWarmupSteps: 2, intervalSteps: 2 }),
  'percentile 25 min trials 3': () => new PercentilePruner(25, { nMinTrials: 3 }),
  'median with NaN and skipped steps': () => new MedianPruner({ nStartupTrials: 2 }),
  'sha min 1 rf 2': () => new SuccessiveHalvingPruner({ minResource: 1, reductionFactor: 2 }),
  'sha auto rf 3': () => new SuccessiveHalvingPruner({ reductionFactor: 3 }),
  'sha min 1 rf 4 rate 1 bootstrap 2': () => new SuccessiveHalvingPruner({ minResource: 1, reductionFactor: 4, minEarlyStoppingRate: 1, bootstrapCount: 2 }),
};

describe('pruners decide as Optuna 3.1 does', () => {
  const { optuna, cases } = fixture<PrunerCase>('pruners.json');
  it('fixtures come from Optuna 3.1', () => expect(optuna).toMatch(/^3\.1\./));
  for (const c of cases) {
    it(`${c.name} (${c.direction})`, async () => {
      const make = PRUNERS[c.name];
      expect(make, `no pruner for fixture case '${c.name}'`).toBeDefined();
      const study = await createStudy({ direction: c.direction, pruner: make!(), sampler: new RandomSampler({ seed: 0 }) });
      const prunedAt: (number | null)[] = [];
      await study.optimize(
        async (trial) => {
          let last: number | null = null;
          for (const [step, raw] of c.values[trial.number]!.entries()) {
            if (raw === null) continue;
            const v = raw === 'nan' ? NaN : raw;
            await trial.report(v, step);
            last = v;
            if (await trial.shouldPrune()) {
              prunedAt.push(step);
              throw new TrialPruned();
            }
          }
          prunedAt.push(null);
          return last !== null && !Number.isNaN(last) ? last : 0;
        },
        { trials: c.values.length },
      );
      expect(prunedAt).toEqual(c.prunedAt);
      const states = (await study.trials).map((t) => t.state);
      expect(states).toEqual(c.prunedAt.map((p) => (p === null ? 'complete' : 'pruned')));
    });
  }
});

describe("the Parzen estimator fits Optuna 3.1's kernels", () => {
  const { cases } = fixture<ParzenCase>('parzen.json');
  const options = (multivariate: boolean) => ({ considerPrior: true, priorWeight: 1, considerMagicClip: true, considerEndpoints: false, weights: defaultWeights, multivariate });
  for (const [i, c] of cases.entries()) {
    const names = Object.keys(c.space);
    const n = c.observations[names[0]!]!.length;
    it(`${c.multivariate ? 'multivariate' : 'univariate'} ${names.join(',')} with ${n} observations (#${i})`, () => {
      const pe = new ParzenEstimator(c.observations, c.space, options(c.multivariate));
      expect([...pe.weights].map((w) => w.toFixed(12))).toEqual(c.weights.map((w) => w.toFixed(12)));
      for (const name of names) {
        const k = pe.kernel(name);
        const want = c.kernels[name]!;
        if ('mus' in k) {
          k.mus.forEach((m, j) => expect(m).toBeCloseTo(want.mus![j]!, 10));
          // Among tied observations NumPy's unstable argsort hands out the neighbour
          // distances in an arbitrary order, so compare (centre, bandwidth) pairs as a multiset.
          const pairs = (mus: number[], sigmas: number[]) => mus.map((m, j) => `${m.toFixed(9)}:${sigmas[j]!.toFixed(9)}`).sort();
          expect(pairs(k.mus, k.sigmas)).toEqual(pairs(want.mus!, want.sigmas!));
        } else {
          k.probs.forEach((row, r) => row.forEach((p, j) => expect(p).toBeCloseTo(want.categorical![r]![j]!, 12)));
        }
      }
      // The densities come from Optuna's estimator fitted with a stable sort (see the generator); the error function here is good to about 1e-7.
      pe.logPdf(c.probes).forEach((lp, j) => expect(lp).toBeCloseTo(c.logPdf[j]!, 5));
    });
  }
});
