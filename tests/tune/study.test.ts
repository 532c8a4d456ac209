// The study API on known functions: samplers, search-space errors, parallel trials,
// enqueued and retried trials, and the limits of optimize().
import { describe, expect, it } from 'vitest';
import {
  createStudy,
  GridSampler,
  MemoryStorage,
  NopPruner,
  RandomSampler,
  SearchSpaceError,
  TPESampler,
  type Sampler,
  type Trial,
} from '../../src/tune/index.js';

const BRANIN_MIN = 0.397887;
function branin(t: Trial): number {
  const x = t.suggestFloat('x', -5, 10);
  const y = t.suggestFloat('y', 0, 15);
  const b = 5.1 / (4 * Math.PI ** 2);
  return (y - b * x * x + (5 / Math.PI) * x - 6) ** 2 + 10 * (1 - 1 / (8 * Math.PI)) * Math.cos(x) + 10;
}

async function bestRegret(sampler: Sampler, trials: number): Promise<number> {
  const study = await createStudy({ sampler, pruner: new NopPruner() });
  await study.optimize(branin, { trials });
  return (await study.bestTrial)!.value! - BRANIN_MIN;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('samplers', () => {
  it('TPE finds a lower Branin value than random search (median over 7 seeds, 60 trials)', async () => {
    const tpe: number[] = [];
    const rnd: number[] = [];
    for (let seed = 0; seed < 7; seed++) {
      tpe.push(await bestRegret(new TPESampler({ seed }), 60));
      rnd.push(await bestRegret(new RandomSampler({ seed }), 60));
    }
    expect(median(tpe)).toBeLessThan(median(rnd));
    expect(median(tpe)).toBeLessThan(0.2);
  });

  it('multivariate TPE with the constant liar runs 4 trials at a time and beats random', async () => {
    const tpe: number[] = [];
    const rnd: number[] = [];
    for (let seed = 0; seed < 5; seed++) {
      const study = await createStudy({ sampler: new TPESampler({ seed, multivariate: true, constantLiar: true }) });
      await study.optimize(branin, { trials: 60, concurrency: 4 });
      tpe.push((await study.bestTrial)!.value! - BRANIN_MIN);
      rnd.push(await bestRegret(new RandomSampler({ seed }), 60));
    }
    expect(median(tpe)).toBeLessThan(median(rnd));
  });

  it('every sampler is deterministic for a seed and trial order', async () => {
    const run = async (make: () => Sampler) => {
      const study = await createStudy({ sampler: make() });
      await study.optimize(
        (t) => {
          const lr = t.suggestFloat('lr', 1e-5, 1e-1, { log: true });
          const bs = t.suggestInt('bs', 16, 256, { step: 16 });
          const opt = t.suggestCategorical('opt', ['adam', 'sgd', 'adamw']);
          const drop = t.suggestFloat('drop', 0, 0.5, { step: 0.05 });
          return Math.log10(lr) ** 2 + bs / 100 + (opt === 'adamw' ? 0 : 1) + drop;
        },
        { trials: 25 },
      );
      return (await study.trials).map((t) => t.params);
    };
    for (const make of [() => new TPESampler({ seed: 3 }), () => new TPESampler({ seed: 3, multivariate: true }), () => new RandomSampler({ seed: 3 })]) {
      const a = await run(make);
      expect(await run(make)).toEqual(a);
      for (const p of a) {
        expect(p.lr).toBeGreaterThanOrEqual(1e-5);
        expect(p.lr).toBeLessThanOrEqual(1e-1);
        expect(((p.bs as number) - 16) % 16).toBe(0);
        expect(['adam', 'sgd', 'adamw']).toContain(p.opt);
        expect(Math.round((p.drop as number) / 0.05) * 0.05).toBeCloseTo(p.drop as number, 12);
      }
    }
    const other = await run(() => new TPESampler({ seed: 4 }));
    expect(other).not.toEqual(await run(() => new TPESampler({ seed: 3 })));
  });

  it('the grid sampler visits every point once, then stops', async () => {
    const study = await createStudy({ sampler: new GridSampler({ a: [1, 2, 3], b: ['x', 'y'] }, { seed: 1 }) });
    await study.optimize((t) => (t.suggestInt('a', 1, 3) as number) + (t.suggestCategorical('b', ['x', 'y']) === 'x' ? 0 : 10), { trials: 50, concurrency: 2 });
    const points = (await study.trials).map((t) => `${String(t.params.a)}${String(t.params.b)}`);
    expect(points.sort()).toEqual(['1x', '1y', '2x', '2y', '3x', '3y']);
  });
});

describe('search spaces', () => {
  const bad: [string, (t: Trial) => unknown, RegExp][] = [
    ['low > high', (t) => t.suggestFloat('lr', 1, 0.1), /parameter 'lr': low \(1\) must be <= high \(0.1\)/],
    ['log with low <= 0', (t) => t.suggestFloat('wd', 0, 1, { log: true }), /parameter 'wd': log needs low > 0/],
    ['int log with low < 1', (t) => t.suggestInt('n', 0, 8, { log: true }), /parameter 'n': log needs low >= 1/],
    ['an empty choice', (t) => t.suggestCategorical('model', []), /parameter 'model': choices must be a non-empty list/],
    ['a non-integer int bound', (t) => t.suggestInt('bs', 1.5, 8), /parameter 'bs': low must be an integer/],
    ['a zero step', (t) => t.suggestFloat('p', 0, 1, { step: 0 }), /parameter 'p': step must be > 0/],
    ['log and step', (t) => t.suggestFloat('p', 0.1, 1, { step: 0.1, log: true }), /parameter 'p': log and step cannot both be set/],
    ['a changed distribution in one trial', (t) => (t.suggestFloat('x', 0, 1), t.suggestFloat('x', 0, 2)), /parameter 'x' was already suggested/],
  ];
  for (const [what, objective, pattern] of bad) {
    it(`${what} is a SearchSpaceError naming the parameter`, async () => {
      const study = await createStudy();
      await expect(study.optimize((t) => (objective(t), 0), { trials: 1 })).rejects.toThrow(SearchSpaceError);
      await expect(study.optimize((t) => (objective(t), 0), { trials: 1 })).rejects.toThrow(pattern);
      expect((await study.trials).every((t) => t.state === 'failed')).toBe(true);
    });
  }
});

describe('optimize', () => {
  it('runs trials concurrently without giving any trial to two workers', async () => {
    const study = await createStudy({ sampler: new RandomSampler({ seed: 1 }) });
    let running = 0;
    let peak = 0;
    const seen: number[] = [];
    await study.optimize(
      async (t) => {
        seen.push(t.number);
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return t.suggestFloat('x', 0, 1);
      },
      { trials: 20, concurrency: 4 },
    );
    expect(peak).toBe(4);
    expect(seen.sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
    expect((await study.trials).map((t) => t.number)).toEqual([...Array(20).keys()]);
  });

  it('runs enqueued parameters first, then samples', async () => {
    const study = await createStudy({ direction: 'maximize' });
    await study.enqueueTrial({ x: 0.25, model: 'b' });
    await study.optimize((t) => t.suggestFloat('x', 0, 1) + (t.suggestCategorical('model', ['a', 'b']) === 'b' ? 1 : 0), { trials: 3 });
    const trials = await study.trials;
    expect(trials[0]!.params).toEqual({ x: 0.25, model: 'b' });
    expect(trials[0]!.value).toBe(1.25);
    expect(trials).toHaveLength(3);
  });

  it('fails a trial whose objective throws, continuing only for caught errors', async () => {
    class Flaky extends Error {}
    const study = await createStudy();
    await study.optimize(
      (t) => {
        if (t.number % 2 === 0) throw new Flaky('odd luck');
        return 1;
      },
      { trials: 4, catch: [Flaky] },
    );
    expect((await study.trials).map((t) => t.state)).toEqual(['failed', 'complete', 'failed', 'complete']);
    expect((await study.trials)[0]!.systemAttrs.fail_reason).toBe('odd luck');
    await expect(study.optimize(() => Promise.reject(new Error('boom')), { trials: 3 })).rejects.toThrow('boom');
    expect(await study.trials).toHaveLength(5);
    await study.optimize(() => NaN, { trials: 1, catch: true });
    expect((await study.trials).at(-1)!.state).toBe('failed');
  });

  it('stops at maxTrials across workers and at the timeout', async () => {
    const store = new MemoryStorage();
    const a = await createStudy({ name: 's', store });
    const b = await createStudy({ name: 's', store, loadIfExists: true });
    await Promise.all([a.optimize(() => 1, { maxTrials: 7 }), b.optimize(() => 1, { maxTrials: 7 })]);
    expect(await a.trials).toHaveLength(7);
    await expect(createStudy({ name: 's', store })).rejects.toThrow(/already exists/);
    const t0 = Date.now();
    await a.optimize(() => new Promise((r) => setTimeout(() => r(1), 20)), { timeout: 0.2 });
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('fails a trial whose worker stopped heartbeating and retries it with the same parameters', async () => {
    const store = new MemoryStorage();
    const study = await createStudy({ name: 'hb', store, sampler: new RandomSampler({ seed: 2 }) });
    // A worker that died mid-trial: a running trial with parameters and no heartbeats.
    const dead = (await store.startTrial(study.id, { worker: 'dead' }))!;
    await store.setParam(dead.id, 'x', 0.5, { type: 'float', low: 0, high: 1, log: false, step: null });
    await new Promise((r) => setTimeout(r, 150));
    await study.optimize((t) => t.suggestFloat('x', 0, 1), { trials: 2, heartbeatInterval: 0.05, gracePeriod: 0.1 });
    const trials = await study.trials;
    expect(trials.map((t) => t.state)).toEqual(['failed', 'complete', 'complete']);
    expect(trials[1]!.params).toEqual({ x: 0.5 });
    expect(trials[1]!.systemAttrs.failed_trial).toBe(0);
    expect(trials.filter((t) => t.state === 'complete' && t.params.x === 0.5)).toHaveLength(1);
  });
});
