// torchlet's OneCycleLR against PyTorch's own, value for value. The fixture is produced by
// scripts/fixtures/gen_onecycle.py, which drives torch.optim.lr_scheduler.OneCycleLR with a
// real AdamW (and, once, SGD with momentum) and records lr and beta1/momentum before every
// optimizer step. native/onecycle.cc performs the same double-precision operations in the
// same order as PyTorch 1.13 (same phase end points, same cos/linear anneal expressions,
// glibc's cos on both sides), so every value is compared with exact equality: no tolerance.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { native, type OneCycleOptions } from '../src/native.js';

interface Fixture {
  name: string;
  optimizer: 'adamw' | 'sgd';
  config: Required<OneCycleOptions>;
  lr: number[];
  /** null when cycleMomentum is false: PyTorch then leaves the optimizer's momentum alone. */
  momentum: number[] | null;
}

interface FixtureFile {
  generator: string;
  torch: string;
  fixtures: Fixture[];
}

const doc = JSON.parse(readFileSync(new URL('./fixtures/onecycle.json', import.meta.url), 'utf8')) as FixtureFile;

/** Indices where torchlet's value is not bit-identical to PyTorch's, with both values. */
function mismatches(actual: Float64Array, expected: readonly number[]): { i: number; got: number; want: number }[] {
  const out: { i: number; got: number; want: number }[] = [];
  expected.forEach((want, i) => {
    const got = actual[i];
    if (got === undefined || !Object.is(got, want)) out.push({ i, got: got ?? Number.NaN, want });
  });
  return out;
}

describe('oneCycleSchedule matches PyTorch OneCycleLR exactly', () => {
  it('the fixture covers the configurations that matter', () => {
    const configs = doc.fixtures.map((f) => f.config);
    expect(doc.fixtures.length).toBeGreaterThanOrEqual(8);
    expect(configs.some((c) => c.anneal === 'cos' && !c.threePhase)).toBe(true);
    expect(configs.some((c) => c.anneal === 'linear' && !c.threePhase)).toBe(true);
    expect(configs.some((c) => c.threePhase && c.anneal === 'cos')).toBe(true);
    expect(configs.some((c) => c.threePhase && c.anneal === 'linear')).toBe(true);
    expect(configs.some((c) => c.pctStart === 0.25)).toBe(true);
    expect(configs.some((c) => c.pctStart === 0.3)).toBe(true);
    expect(configs.some((c) => c.divFactor === 10 && c.finalDivFactor === 1000 && c.totalSteps === 7035)).toBe(true);
    expect(configs.some((c) => c.divFactor === 25 && c.finalDivFactor === 1e4)).toBe(true);
    for (const steps of [37, 100, 7035]) expect(configs.some((c) => c.totalSteps === steps)).toBe(true);
    expect(doc.fixtures.some((f) => f.optimizer === 'sgd' && f.momentum !== null)).toBe(true);
  });

  for (const fixture of doc.fixtures) {
    const { config } = fixture;
    const label =
      `${fixture.name} (${fixture.optimizer}, ${config.anneal}${config.threePhase ? ', three-phase' : ''}, ` +
      `pctStart ${config.pctStart}, div ${config.divFactor}/${config.finalDivFactor}, ${config.totalSteps} steps)`;

    it(label, () => {
      const schedule = native().oneCycleSchedule(config, config.totalSteps);
      expect(schedule.lr).toHaveLength(config.totalSteps);
      expect(fixture.lr).toHaveLength(config.totalSteps);
      // A compact summary first, so a failure says how many values differ and where...
      expect(mismatches(schedule.lr, fixture.lr).slice(0, 5)).toEqual([]);
      // ...then the value-by-value exact comparison the contract promises.
      fixture.lr.forEach((want, i) => expect(schedule.lr[i], `lr at step ${i}`).toBe(want));

      if (fixture.momentum !== null) {
        expect(schedule.momentum).toHaveLength(config.totalSteps);
        expect(fixture.momentum).toHaveLength(config.totalSteps);
        expect(mismatches(schedule.momentum, fixture.momentum).slice(0, 5)).toEqual([]);
        fixture.momentum.forEach((want, i) => expect(schedule.momentum[i], `momentum at step ${i}`).toBe(want));
      }
    });
  }

  it('a prefix of the schedule equals the start of the full one', () => {
    const fixture = doc.fixtures.find((f) => f.name === 'reference_recipe');
    expect(fixture).toBeDefined();
    if (!fixture) return;
    const head = native().oneCycleSchedule(fixture.config, 500);
    expect(head.lr).toHaveLength(500);
    head.lr.forEach((v, i) => expect(v).toBe(fixture.lr[i]));
  });
});
