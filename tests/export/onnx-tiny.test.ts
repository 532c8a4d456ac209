// The tiny models (issue 15) through the ONNX exporter like the reference models: trained
// briefly (two epochs of 2,048 images) so that their batch norms hold real statistics,
// exported folded, unfolded and with the preprocessing baked in, checked by python3-onnx, and
// run by onnxruntime-web against torchlet on all 10,000 MNIST test images (folded; the other
// variants on 2,000). tiny8k factorized into 3x1 + 1x3 convolutions goes the same way: its
// non-square kernels and paddings become per-dimension kernel_shape and pads.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMnist, Model, toOnnx, train, type OnnxExportOptions } from '../../src/index.js';
import { tinyFactorized, tinyModels } from '../../src/models.js';
import { LOGPROB_TOLERANCE, agreement, checkOnnx, exportTestBed, hasPythonOnnx } from '../helpers/onnx.js';
import { missing } from '../helpers/requires.js';

const { dir, test, testSet } = exportTestBed('torchlet-onnx-tiny-');
const skipChecker = missing(hasPythonOnnx, '/usr/bin/python3 with onnx (python3-onnx)');

// As for the reference models: the default export on the whole test set, the other variants
// on the first 2,000 images to keep `npm test` short.
const VARIANTS: [string, OnnxExportOptions, number][] = [
  ['folded', {}, 10_000],
  ['unfolded', { foldBatchNorm: false }, 2_000],
  ['preprocessing', { includePreprocessing: true }, 2_000],
];

const specs = { ...tinyModels, ...tinyFactorized };

describe.each(Object.keys(specs) as (keyof typeof specs)[])('%s', (name) => {
  it('exports, passes the checker, and runs in onnxruntime-web like torchlet on all 10,000 test images (folded; 2,000 for the other variants)', async () => {
    const spec = specs[name];
    const model = new Model(spec, { seed: 1 });
    const data = await loadMnist({ trainLimit: 2048, testLimit: 256 });
    try {
      await train(model, data, { epochs: 2, maxLr: 0.05, seed: 1, skipTrainEval: true });
      const reference = await model.evaluate(testSet(), { logProbs: true });
      expect(reference.count).toBe(10_000);
      // Agreement means something only if the model tells digits apart.
      expect(new Set(reference.predictions).size).toBe(10);
      const files: string[] = [];
      for (const [variant, options, count] of VARIANTS) {
        const bytes = toOnnx(spec, model.stateTensors(), options);
        const file = join(dir, `${name}-${variant}.onnx`);
        writeFileSync(file, bytes);
        files.push(file);
        const r = await agreement(bytes, spec, test().images, { logProbs: reference.logProbs!, predictions: reference.predictions }, { count, pixels: variant === 'preprocessing' });
        console.log(`${name} ${variant}: max |log-prob delta| ${r.maxDelta.toExponential(2)} over ${r.count} images (accuracy after two short epochs ${(reference.accuracy * 100).toFixed(2)}%)`);
        expect(r.count).toBe(count);
        expect(r.maxDelta).toBeLessThan(LOGPROB_TOLERANCE);
        expect(r.samePredictions).toBe(true);
      }
      if (!skipChecker) {
        for (const r of checkOnnx(files)) {
          expect(r.error).toBeUndefined();
          expect(r.ok).toBe(true);
          expect(Object.values(r.outputs!)).toEqual([['batch', 10]]);
        }
      }
    } finally {
      data.train.dispose();
      data.test.dispose();
      model.dispose();
    }
  });
});
