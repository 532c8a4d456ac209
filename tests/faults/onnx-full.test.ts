// The ONNX variants that `npm test` checks on 2,000 images (tests/export/onnx.test.ts),
// here on the whole MNIST test set: batch norm kept as its own node, and the graph with
// the preprocessing baked in. Slow on two cores, so it lives with the long tests.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRawDataset } from '../../src/data/mnist.js';
import { Dataset } from '../../src/dataset.js';
import { toOnnx } from '../../src/export/onnx.js';
import { Model, models, type ModelName } from '../../src/index.js';
import { ROOT } from '../helpers/cli.js';
import { LOGPROB_TOLERANCE, agreement } from '../helpers/onnx.js';

describe.each(Object.keys(models) as ModelName[])('%s', (name) => {
  it('onnxruntime-web agrees with torchlet on all 10,000 test images, unfolded and with preprocessing', async () => {
    const spec = models[name];
    const { test } = await loadRawDataset({});
    const model = Model.fromFile(spec, join(ROOT, 'weights', `${name}.pt`));
    const testSet = Dataset.fromRaw(test);
    try {
      const reference = await model.evaluate(testSet, { logProbs: true });
      for (const [variant, options] of [['unfolded', { foldBatchNorm: false }], ['preprocessing', { includePreprocessing: true }]] as const) {
        const r = await agreement(toOnnx(spec, model.stateTensors(), options), spec, test.images, { logProbs: reference.logProbs!, predictions: reference.predictions }, {
          count: test.count,
          pixels: variant === 'preprocessing',
        });
        console.log(`${name} ${variant}: max |log-prob delta| ${r.maxDelta.toExponential(2)} over ${r.count} images`);
        expect(r.count).toBe(10_000);
        expect(r.maxDelta).toBeLessThan(LOGPROB_TOLERANCE);
        expect(r.samePredictions).toBe(true);
      }
    } finally {
      testSet.dispose();
      model.dispose();
    }
  });
});
