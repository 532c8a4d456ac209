// The weight EMA and label smoothing, checked against their formulas. Each trainEpoch
// below is one optimizer step (the dataset is one batch), so the test sees the weights
// after every step and can fold them into the average itself.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Dataset, defineModel, layers as L, Model, native, train } from '../src/index.js';
import type { NativeTrainer, TrainerOptions } from '../src/native.js';

const BATCH = 32;
const spec = defineModel('ema_probe', [L.conv2d(1, 4, 5, { stride: 3 }), L.batchNorm2d(4), L.relu(), L.flatten(), L.linear(256, 10), L.logSoftmax()]);
const images = new Uint8Array(BATCH * 784).map((_, i) => (i * 37 + (i >> 5)) % 256);
const labels = new Uint8Array(BATCH).map((_, i) => (i * 7) % 10);
const data = Dataset.fromArrays(images, labels, [BATCH, 1, 28, 28]);
const dir = mkdtempSync(join(tmpdir(), 'torchlet-ema-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const options = (emaDecay: number): TrainerOptions => ({ optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, batchSize: BATCH, seed: 3, emaDecay });

function state(model: Model): Record<string, Float64Array> {
  return Object.fromEntries(Object.entries(model.stateTensors()).map(([k, t]) => [k, Float64Array.from(t.data)]));
}

function maxDiff(a: Record<string, ArrayLike<number>>, b: Record<string, ArrayLike<number>>): number {
  let worst = 0;
  for (const [k, x] of Object.entries(a)) {
    const y = b[k];
    if (!y) throw new Error(`no ${k}`);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs((x[i] ?? 0) - (y[i] ?? 0)));
  }
  return worst;
}

async function steps(trainer: NativeTrainer, from: number, count: number, model: Model, onStep?: (w: Record<string, Float64Array>, t: number) => void): Promise<void> {
  for (let t = from; t < from + count; t++) {
    await trainer.trainEpoch(data.handle, t);
    onStep?.(state(model), t);
  }
}

describe('weight EMA', () => {
  it('averages every state entry with the warm-up decay min(d, (1 + t) / (10 + t)), and swaps in and back', async () => {
    const decay = 0.9;
    const model = new Model(spec, { seed: 1 });
    const trainer = new (native().Trainer)(model.handle, options(decay));
    let expected = state(model);
    await steps(trainer, 0, 12, model, (w, t) => {
      const d = Math.min(decay, (1 + t) / (10 + t));
      expected = Object.fromEntries(
        Object.entries(expected).map(([k, e]) => [k, k.endsWith('num_batches_tracked') ? Float64Array.from(w[k]!) : e.map((v, i) => d * v + (1 - d) * w[k]![i]!)]),
      );
    });
    const raw = state(model);
    expect(trainer.swapEma()).toBe(true);
    const averaged = state(model);
    expect(maxDiff(averaged, expected)).toBeLessThan(1e-5);
    expect(maxDiff(averaged, raw)).toBeGreaterThan(1e-3);
    expect(() => trainer.trainEpoch(data.handle, 12)).toThrow(/EMA weights/);
    expect(() => trainer.saveState(join(dir, 'x.ckpt'), '')).toThrow(/EMA weights/);
    expect(trainer.swapEma()).toBe(false);
    expect(maxDiff(state(model), raw)).toBe(0);
    trainer.dispose();
    model.dispose();
  });

  it('is saved in the checkpoint: a resumed trainer ends with the same average as an uninterrupted one', async () => {
    const a = new Model(spec, { seed: 2 });
    const ta = new (native().Trainer)(a.handle, options(0.95));
    await steps(ta, 0, 5, a);
    ta.swapEma();
    const uninterrupted = state(a);

    const b = new Model(spec, { seed: 2 });
    const tb = new (native().Trainer)(b.handle, options(0.95));
    await steps(tb, 0, 3, b);
    const ckpt = join(dir, 'ema.ckpt');
    tb.saveState(ckpt, 'meta');
    tb.dispose();
    b.dispose();
    const c = new Model(spec, { seed: 9 });
    const tc = new (native().Trainer)(c.handle, options(0.95));
    expect(tc.loadState(ckpt)).toBe('meta');
    await steps(tc, 3, 2, c);
    tc.swapEma();
    expect(maxDiff(state(c), uninterrupted)).toBe(0);

    // A trainer keeping an EMA cannot resume a checkpoint that has none.
    const plain = new Model(spec, { seed: 2 });
    const tp = new (native().Trainer)(plain.handle, options(0));
    await steps(tp, 0, 1, plain);
    tp.saveState(join(dir, 'plain.ckpt'), '');
    expect(() => tc.loadState(join(dir, 'plain.ckpt'))).toThrow(/missing the EMA of .*trained without EMA/);
    expect(() => tp.swapEma()).toThrow(/keeps no EMA/);
    for (const x of [ta, tc, tp]) x.dispose();
    for (const x of [a, c, plain]) x.dispose();
  });

  it('refuses a decay outside [0, 1)', () => {
    const model = new Model(spec, { seed: 1 });
    expect(() => new (native().Trainer)(model.handle, options(1))).toThrow(/emaDecay must be within \[0, 1\)/);
    expect(() => new (native().Trainer)(model.handle, options(-0.1))).toThrow(/emaDecay/);
    model.dispose();
  });

  it('train() evaluates and keeps the averaged weights, and the model ends with them', async () => {
    const model = new Model(spec, { seed: 4 });
    const best = join(dir, 'best.pt');
    const r = await train(model, { train: data, test: data }, { epochs: 3, batchSize: 8, seed: 5, ema: { decay: 0.9 }, bestPath: best, skipTrainEval: true });
    // The returned model holds the average, so evaluating it again gives the last epoch's figure.
    const again = await model.evaluate(data);
    expect(again.accuracy).toBeCloseTo(r.final.testAccuracy, 10);
    expect(again.loss).toBeCloseTo(r.final.testLoss, 6);
    await expect(train(model, { train: data, test: data }, { epochs: 1, ema: { decay: 1 } })).rejects.toThrow(/ema.decay must be within \(0, 1\)/);
    model.dispose();
  });
});

describe('label smoothing', () => {
  it("gives the step's loss as (1 - s) NLL + s * mean over classes of -log p, on log-softmax models", async () => {
    const linear = defineModel('smooth_probe', [L.flatten(), L.linear(784, 10), L.logSoftmax()]);
    const s = 0.1;
    const model = new Model(linear, { seed: 6 });
    const logp = model.logProbs(images);
    let expected = 0;
    for (let n = 0; n < BATCH; n++) {
      const row = logp.subarray(n * 10, n * 10 + 10);
      const mean = row.reduce((acc, v) => acc - v, 0) / 10;
      expected += ((1 - s) * -row[labels[n]!]! + s * mean) / BATCH;
    }
    const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'sgd', lr: 0.1 }, batchSize: BATCH, loss: 'cross_entropy', labelSmoothing: s });
    const stats = await trainer.trainEpoch(data.handle, 0);
    expect(stats.loss).toBeCloseTo(expected, 5);
    trainer.dispose();
    await expect(train(model, { train: data, test: data }, { epochs: 1, labelSmoothing: 1 })).rejects.toThrow(/labelSmoothing must be within \[0, 1\)/);
    model.dispose();
  });
});
