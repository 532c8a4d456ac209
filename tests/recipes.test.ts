// The recipes of the MNIST projects inside train(): every optimizer and schedule reaches the
// native trainer with the lr PyTorch would use at each batch or epoch, early stopping stops
// and restores, and resuming stays bit-identical with all of it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dataset, loadMnist, Model, models, native, train, withNormalization, type MnistData, type TrainOptions } from '../src/index.js';

let data: MnistData;
let fit: Dataset;
let val: Dataset;
const dir = mkdtempSync(join(tmpdir(), 'torchlet-recipes-'));

beforeAll(async () => {
  data = await loadMnist({ trainLimit: 1280, testLimit: 500 });
  fit = data.train.slice(0, 1024);
  val = data.train.slice(1024, 1280);
});
afterAll(() => {
  for (const d of [data.train, data.test, fit, val]) d.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const STEPS = 1024 / 128;

async function run(options: TrainOptions, seed = 5) {
  const model = new Model(models.super_light, { seed });
  const lrs: number[] = [];
  const result = await train(model, { train: fit, test: data.test, val }, { seed, skipTrainEval: true, onProgress: (_e, p) => lrs.push(p.lr), ...options });
  return { model, result, lrs };
}

describe('optimizers and schedules in train()', () => {
  it('Adam at a constant lr: every step and epoch reports that lr', async () => {
    const { model, result } = await run({ epochs: 2, lr: 1e-3, optimizer: { type: 'adam' }, scheduler: { type: 'constant' } });
    expect(result.history.map((r) => r.lr)).toEqual([1e-3, 1e-3]);
    expect(result.history[1]!.valLoss).toBeLessThan(result.history[0]!.valLoss!);
    model.dispose();
  });

  it('a per-epoch step schedule changes the lr between epochs only, as PyTorch\'s StepLR would', async () => {
    const scheduler = { type: 'step', stepSize: 1, gamma: 0.5 } as const;
    const { model, result } = await run({ epochs: 3, lr: 0.05, optimizer: { type: 'sgd', momentum: 0.9, nesterov: true }, scheduler });
    const expected = Array.from(native().lrSchedule(scheduler, 0.05, 3).lr);
    expect(result.history.map((r) => r.lr)).toEqual(expected);
    model.dispose();
  });

  it('a per-batch cosine schedule moves the lr every step, as CosineAnnealingLR stepped per batch would', async () => {
    const scheduler = { type: 'cosine', tMax: 2 * STEPS, etaMin: 1e-5, interval: 'step' } as const;
    const { model, result } = await run({ epochs: 2, lr: 3e-3, optimizer: { type: 'rmsprop', momentum: 0.5 }, weightDecay: 1e-4, scheduler });
    const expected = native().lrSchedule(scheduler, 3e-3, 2 * STEPS).lr;
    expect(result.history.map((r) => r.lr)).toEqual([expected[STEPS - 1], expected[2 * STEPS - 1]]);
    model.dispose();
  });

  it('reduce-on-plateau steps on the validation loss once per epoch', async () => {
    const scheduler = { type: 'plateau', patience: 0, factor: 0.5, threshold: 0.5 } as const;
    const { model, result } = await run({ epochs: 4, lr: 2e-3, optimizer: { type: 'adam' }, scheduler });
    // A relative threshold of 0.5 makes most epochs bad ones, so the lr must come down.
    const expected = Array.from(native().lrSchedule(scheduler, 2e-3, 4, result.history.map((r) => r.valLoss!)).lr);
    expect(result.history.map((r) => r.lr)).toEqual(expected);
    expect(expected.at(-1)).toBeLessThan(2e-3);
    model.dispose();
  });

  it('refuses options that do not fit, naming them', async () => {
    const model = new Model(models.super_light, { seed: 1 });
    const bad = (options: TrainOptions, withVal = true) =>
      train(model, { train: fit, test: data.test, ...(withVal && { val }) }, { epochs: 1, skipTrainEval: true, ...options });
    await expect(bad({ optimizer: { type: 'adam', nesterov: true } })).rejects.toThrow(/optimizer.nesterov does not apply to adam/);
    await expect(bad({ optimizer: { type: 'adagrad' as 'adam' } })).rejects.toThrow(/optimizer.type must be one of/);
    await expect(bad({ scheduler: { type: 'multistep', milestones: [] } })).rejects.toThrow(/milestones must hold at least one/);
    await expect(bad({ earlyStopping: { patience: 2 } }, false)).rejects.toThrow(/earlyStopping watches valLoss, but there is no validation set/);
    await expect(bad({ earlyStopping: { patience: -1 } })).rejects.toThrow(/patience must be a non-negative integer/);
    await expect(bad({ normalize: 'minus1-1' })).rejects.toThrow(/use withNormalization\(spec, 'minus1-1'\)/);
    model.dispose();
  });
});

describe('early stopping', () => {
  it('stops after `patience` epochs without improvement and restores the best epoch\'s weights', async () => {
    // Watching val accuracy in 'min' mode, nothing after epoch 1 counts as better: the run
    // must stop after 1 + patience epochs and end with epoch 1's weights.
    const { model, result } = await run({ epochs: 8, lr: 1e-3, optimizer: { type: 'adam' }, scheduler: { type: 'constant' }, earlyStopping: { metric: 'valAccuracy', mode: 'min', patience: 2 } });
    expect(result.history).toHaveLength(3);
    expect(result.stoppedEarly).toBe(3);
    expect(result.best).toMatchObject({ epoch: 1, metric: 'valAccuracy', by: 'val' });
    expect((await model.evaluate(val)).accuracy).toBe(result.history[0]!.valAccuracy);
    model.dispose();
  });

  it('min delta: an improvement smaller than it does not count', async () => {
    const { model, result } = await run({ epochs: 5, lr: 1e-3, optimizer: { type: 'adam' }, scheduler: { type: 'constant' }, earlyStopping: { metric: 'valLoss', patience: 1, minDelta: 10 } });
    expect(result.history).toHaveLength(2);
    expect(result.best.epoch).toBe(1);
    model.dispose();
  });

  it('runs to the end while the metric improves, keeping the best epoch\'s weights', async () => {
    const { model, result } = await run({ epochs: 3, lr: 1e-3, optimizer: { type: 'adam' }, scheduler: { type: 'constant' }, earlyStopping: { metric: 'trainLoss', patience: 1, restoreBest: true } });
    expect(result.history).toHaveLength(3);
    expect(result.stoppedEarly).toBeUndefined();
    model.dispose();
  });
});

describe('resume stays bit-identical with every recipe', () => {
  const recipes: [string, TrainOptions][] = [
    ['RMSprop + reduce-on-plateau + early stopping', { epochs: 4, lr: 2e-3, optimizer: { type: 'rmsprop', momentum: 0.9, centered: true }, weightDecay: 1e-4, scheduler: { type: 'plateau', patience: 0, factor: 0.5, threshold: 0.5 }, earlyStopping: { metric: 'valLoss', patience: 3 } }],
    ['SGD nesterov + per-batch cosine + rotate-translate augmentation', { epochs: 3, lr: 0.05, optimizer: { type: 'sgd', momentum: 0.9, nesterov: true }, scheduler: { type: 'cosine', tMax: 3 * STEPS, interval: 'step' }, aug: true, augment: { degrees: 10, translate: [0.1, 0.1] } }],
    ['AdamW + OneCycle + batch norm recalibrated after each epoch + elastic augmentation', { epochs: 3, recalibrateBatchNorm: true, aug: true, augment: { degrees: 5, elastic: { alpha: 30, sigma: 4 } } }],
  ];
  for (const [name, options] of recipes) {
    it(name, async () => {
      const full = await run({ ...options, bestPath: join(dir, 'full-best.pt') });
      full.model.save(join(dir, 'full.pt'));
      full.model.dispose();

      const ckpt = join(dir, 'r.ckpt');
      const model = new Model(models.super_light, { seed: 5 });
      let epochs = 0;
      await expect(
        train(model, { train: fit, test: data.test, val }, {
          seed: 5, skipTrainEval: true, ...options, bestPath: join(dir, 'part-best.pt'), checkpointPath: ckpt,
          onEpoch: () => {
            if (++epochs === 2) throw new Error('interrupted');
          },
        }),
      ).rejects.toThrow('interrupted');
      model.dispose();

      const resumed = new Model(models.super_light, { seed: 77 });
      const result = await train(resumed, { train: fit, test: data.test, val }, { seed: 5, skipTrainEval: true, ...options, bestPath: join(dir, 'part-best.pt'), resume: ckpt });
      resumed.save(join(dir, 'resumed.pt'));
      resumed.dispose();
      expect(result.history.map((r) => r.lr)).toEqual(full.result.history.map((r) => r.lr));
      expect(readFileSync(join(dir, 'resumed.pt')).equals(readFileSync(join(dir, 'full.pt')))).toBe(true);
    });
  }
});

describe('normalisation presets', () => {
  it('a model built for [-1, 1] inputs normalises with mean 0.5 and std 0.5, and trains with the matching recipe', async () => {
    const spec = withNormalization(models.super_light, 'minus1-1');
    expect(spec.input).toMatchObject({ mean: [0.5], std: [0.5] });
    const model = new Model(spec, { seed: 2 });
    const result = await train(model, { train: fit, test: data.test }, { epochs: 1, lr: 1e-3, optimizer: { type: 'adam' }, scheduler: { type: 'constant' }, normalize: 'minus1-1', skipTrainEval: true });
    expect(Number.isFinite(result.final.stepLoss)).toBe(true);
    // The same weights under MNIST's normalisation see the same network input when fed
    // pixels mapped so that (x' - 0.1307) / 0.3081 = (x - 0.5) / 0.5.
    model.save(join(dir, 'norm.pt'));
    const mnistNorm = Model.fromFile(models.super_light, join(dir, 'norm.pt'));
    const x = Float32Array.from({ length: 784 }, (_, i) => ((i * 37) % 256) / 255);
    const mapped = x.map((v) => 0.1307 + (0.3081 * (v - 0.5)) / 0.5);
    const a = model.logProbs(x);
    const b = mnistNorm.logProbs(mapped);
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 4));
    mnistNorm.dispose();
    model.dispose();
  });
});
