// Every optimizer and lr schedule against PyTorch's own, value for value. The fixtures come
// from scripts/fixtures/gen_optim.py, which drives torch.optim's optimizers and
// torch.optim.lr_scheduler's schedulers (Debian's PyTorch 1.13). libtorch's optimizers run
// the same ATen ops in the same order as PyTorch's single-tensor ones, and native/schedule.cc
// replays each scheduler's recursive form with the same double operations, so the
// comparison is exact: no tolerance.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { native, type OptimizerOptions, type SchedulerOptions } from '../src/native.js';

interface ScheduleFixture {
  name: string;
  baseLr: number;
  count: number;
  scheduler: SchedulerOptions;
  metrics?: number[];
  lr: number[];
}

interface OptimizerFixture {
  name: string;
  optimizer: OptimizerOptions;
  scheduler?: SchedulerOptions;
  metrics?: number[];
  params: number[][];
}

const read = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as T;
const schedules = read<{ fixtures: ScheduleFixture[] }>('schedules.json');
const optimizers = read<{ init: number[]; grads: number[][]; fixtures: OptimizerFixture[] }>('optimizers.json');

/** The first few indices where `actual` is not bit-identical to `expected`. */
function mismatches(actual: ArrayLike<number>, expected: readonly number[]): { i: number; got: number; want: number }[] {
  const out: { i: number; got: number; want: number }[] = [];
  expected.forEach((want, i) => {
    const got = actual[i] ?? Number.NaN;
    if (!Object.is(got, want) && out.length < 5) out.push({ i, got, want });
  });
  return out;
}

describe('lr schedules match torch.optim.lr_scheduler exactly', () => {
  it('the fixture covers every schedule type, per batch and per epoch lengths, and plateau modes', () => {
    const types = new Set(schedules.fixtures.map((f) => f.scheduler.type));
    expect([...types].sort()).toEqual(['constant', 'cosine', 'exponential', 'multistep', 'plateau', 'step']);
    expect(schedules.fixtures.some((f) => f.count === 7035)).toBe(true);
    const plateaus = schedules.fixtures.filter((f) => f.scheduler.type === 'plateau');
    expect(plateaus.length).toBeGreaterThanOrEqual(4);
    // The fixtures must actually exercise reductions, not a flat line.
    for (const f of plateaus) expect(new Set(f.lr).size, f.name).toBeGreaterThan(1);
  });

  for (const f of schedules.fixtures) {
    it(`${f.name} (${f.scheduler.type}, ${f.count} indices)`, () => {
      const { lr, momentum } = native().lrSchedule(f.scheduler, f.baseLr, f.count, f.metrics);
      expect(lr).toHaveLength(f.count);
      expect(mismatches(lr, f.lr)).toEqual([]);
      // Only OneCycleLR touches momentum.
      expect(Array.from(momentum).every(Number.isNaN)).toBe(true);
    });
  }

  it('the onecycle type is the OneCycleLR of oneCycleSchedule, momentum included', () => {
    const options = { maxLr: 0.01, totalSteps: 300, divFactor: 10, finalDivFactor: 1000 };
    const viaSchedule = native().lrSchedule({ type: 'onecycle', ...options }, 0.01, 300);
    const direct = native().oneCycleSchedule(options, 300);
    expect(Array.from(viaSchedule.lr)).toEqual(Array.from(direct.lr));
    expect(Array.from(viaSchedule.momentum)).toEqual(Array.from(direct.momentum));
  });

  it('bad schedules are refused with the option named', () => {
    const lrSchedule = native().lrSchedule;
    expect(() => lrSchedule({ type: 'cosine', tMax: 0 }, 0.1, 3)).toThrow(/scheduler.tMax must be a positive integer/);
    expect(() => lrSchedule({ type: 'multistep', milestones: [5, 3] }, 0.1, 3)).toThrow(/milestones must be increasing/);
    expect(() => lrSchedule({ type: 'plateau', factor: 1.5 }, 0.1, 3)).toThrow(/factor must be within \(0, 1\)/);
    expect(() => lrSchedule({ type: 'plateau', interval: 'step' }, 0.1, 3)).toThrow(/interval must be 'epoch' for plateau/);
    expect(() => lrSchedule({ type: 'warmup' } as unknown as SchedulerOptions, 0.1, 3)).toThrow(/scheduler.type must be one of/);
    expect(() => lrSchedule({ type: 'step', stepSize: 2, gamma: -1 }, 0.1, 3)).toThrow(/gamma must be positive/);
  });
});

describe('optimizers match torch.optim exactly', () => {
  const n = optimizers.init.length;
  const params = Float32Array.from(optimizers.init);
  const grads = Float32Array.from(optimizers.grads.flat());

  it('the fixture covers every optimizer, with and without weight decay and schedules', () => {
    const types = new Set(optimizers.fixtures.map((f) => f.optimizer.type));
    expect([...types].sort()).toEqual(['adam', 'adamw', 'rmsprop', 'sgd']);
    for (const type of types) {
      expect(optimizers.fixtures.some((f) => f.optimizer.type === type && (f.optimizer.weightDecay ?? (type === 'adamw' ? 0.01 : 0)) > 0), type).toBe(true);
    }
    expect(optimizers.fixtures.some((f) => f.optimizer.type === 'sgd' && 'nesterov' in f.optimizer && f.optimizer.nesterov)).toBe(true);
    expect(optimizers.fixtures.filter((f) => f.scheduler !== undefined).length).toBeGreaterThanOrEqual(4);
  });

  for (const f of optimizers.fixtures) {
    it(`${f.name}`, () => {
      const out = native().optimizerSteps({
        optimizer: f.optimizer,
        ...(f.scheduler && { scheduler: f.scheduler }),
        ...(f.metrics && { metrics: f.metrics }),
        params,
        grads,
      });
      expect(out).toHaveLength(f.params.length * n);
      f.params.forEach((want, step) => expect(mismatches(out.subarray(step * n, (step + 1) * n), want), `after step ${step + 1}`).toEqual([]));
    });
  }

  it('bad optimizer options are refused with the option named', () => {
    const run = (optimizer: OptimizerOptions) => native().optimizerSteps({ optimizer, params, grads });
    expect(() => run({ type: 'lamb', lr: 0.1 } as unknown as OptimizerOptions)).toThrow(/optimizer.type must be 'adam', 'adamw', 'sgd' or 'rmsprop'/);
    expect(() => run({ type: 'adam', lr: -1 })).toThrow(/optimizer.lr must be a positive number/);
    expect(() => run({ type: 'sgd', lr: 0.1, nesterov: true })).toThrow(/nesterov needs momentum > 0/);
    expect(() => run({ type: 'adam', lr: 0.1, betas: [1.2, 0.9] })).toThrow(/betas must be within/);
    expect(() => run({ type: 'rmsprop', lr: 0.1, weightDecay: -1 })).toThrow(/weightDecay must be >= 0/);
  });
});
