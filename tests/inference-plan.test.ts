// Predictions of up to 64 images run through an inference plan (native/inference.cc): each
// conv takes in the batch norm and ReLU after it, and runs through XNNPACK. The plan must
// give what the layers give unfolded (evaluation and batches over 64 run them so), and must
// never run on weights older than the model's: after a load or a training step it is made
// again. Non-square convolutions (3x1 + 1x3, per-dimension strides, paddings and dilations)
// go through the plan too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dataset, defineModel, layers as L, Model, models, train } from '../src/index.js';
import { tinyFactorized } from '../src/models.js';
import { loadRawDataset } from '../src/data/mnist.js';
import { releasedWeightsPath } from '../src/weights.js';

const N = 192;
let images: Uint8Array;
let labels: Uint8Array;
const dir = mkdtempSync(join(tmpdir(), 'torchlet-plan-'));

beforeAll(async () => {
  const test = (await loadRawDataset()).test;
  images = test.images.slice(0, N * 784);
  labels = test.labels.slice(0, N);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** logProbs in passes of `rows` images (the plan runs passes of up to 64). */
function inPasses(model: Model, rows: number): Float32Array {
  const out = new Float32Array(N * 10);
  for (let i = 0; i < N; i += rows) out.set(model.logProbs(images.subarray(i * 784, Math.min(N, i + rows) * 784)), i * 10);
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a).toHaveLength(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return worst;
}

describe('the inference plan', () => {
  for (const name of ['super_light', 'lightest', 'light'] as const) {
    it(`gives ${name}'s unfolded log-probabilities (evaluation, passes over 64 images)`, async () => {
      const model = Model.fromFile(models[name], releasedWeightsPath(name));
      const data = Dataset.fromArrays(images, labels, [N, 1, 28, 28]);
      const evaluated = (await model.evaluate(data, { logProbs: true })).logProbs;
      if (evaluated === undefined) throw new Error('evaluate returned no log-probabilities');
      const unfolded = model.logProbs(images); // 192 images: one pass over 64, unfolded
      for (const rows of [1, 7, 64]) {
        const planned = inPasses(model, rows);
        expect(maxDiff(planned, evaluated)).toBeLessThan(1e-4);
        expect(maxDiff(planned, unfolded)).toBeLessThan(1e-4);
      }
      const async = await model.logProbsAsync(images.subarray(0, 5 * 784));
      expect(maxDiff(async, evaluated.subarray(0, 50))).toBeLessThan(1e-4);
      data.dispose();
      model.dispose();
    });
  }

  it('gives the unfolded log-probabilities for non-square convolutions, each followed by batch norm and ReLU', async () => {
    const nonSquare = defineModel('non_square', [
      L.conv2d(1, 6, [3, 1], { padding: [1, 0], bias: false }),
      L.batchNorm2d(6),
      L.relu(),
      L.conv2d(6, 6, [1, 3], { padding: [0, 1], groups: 3 }),
      L.batchNorm2d(6),
      L.relu(),
      L.conv2d(6, 8, [5, 3], { stride: [2, 1], padding: [2, 0], dilation: [1, 2] }),
      L.batchNorm2d(8),
      L.relu(),
      L.conv2d(8, 10, 3, { stride: [1, 2], padding: [2, 1], dilation: 2 }),
      L.globalAvgPool(),
      L.flatten(),
      L.logSoftmax(),
    ]);
    for (const spec of [nonSquare, tinyFactorized.tiny8k_factorized]) {
      const model = new Model(spec, { seed: 4 });
      const data = Dataset.fromArrays(images, labels, [N, 1, 28, 28]);
      // A training epoch, so that the batch norms folded into the convs hold real statistics.
      await train(model, { train: data, test: data }, { epochs: 1, batchSize: 32, seed: 4, lr: 0.05, skipTrainEval: true });
      const unfolded = model.logProbs(images);
      for (const rows of [1, 7, 64]) expect(maxDiff(inPasses(model, rows), unfolded), `${spec.name}, passes of ${rows}`).toBeLessThan(1e-4);
      data.dispose();
      model.dispose();
    }
  });

  it('is made again after the weights are loaded', () => {
    const model = Model.fromFile(models.super_light, releasedWeightsPath('super_light'));
    const before = inPasses(model, 16);
    const path = join(dir, 'fresh.pt');
    const fresh = new Model(models.super_light, { seed: 7 });
    fresh.save(path);
    model.load(path);
    const after = inPasses(model, 16);
    expect(maxDiff(after, before)).toBeGreaterThan(0.1);
    expect(maxDiff(after, inPasses(fresh, 16))).toBe(0);
    fresh.dispose();
    model.dispose();
  });

  it('is made again after a training step changes the weights and batch-norm statistics', async () => {
    const model = Model.fromFile(models.super_light, releasedWeightsPath('super_light'));
    const before = inPasses(model, 32);
    const data = Dataset.fromArrays(images, labels, [N, 1, 28, 28]);
    await train(model, { train: data, test: data }, { epochs: 1, batchSize: 64, seed: 3, lr: 0.05, skipTrainEval: true });
    const after = inPasses(model, 32);
    expect(maxDiff(after, before)).toBeGreaterThan(1e-3);
    // A model loaded from the trained weights has never run the old ones.
    const path = join(dir, 'trained.pt');
    model.save(path);
    const reloaded = Model.fromFile(models.super_light, path);
    expect(maxDiff(after, inPasses(reloaded, 32))).toBe(0);
    reloaded.dispose();
    data.dispose();
    model.dispose();
  });
});
