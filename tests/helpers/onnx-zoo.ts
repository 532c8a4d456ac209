// The model zoo through the ONNX exporter, shared by tests/export/onnx-zoo.test.ts (every
// zoo model on a few hundred images) and tests/faults/onnx-zoo-full.test.ts (a few models
// on the whole test set): each model exports (batch norm folded, and for some unfolded),
// passes Debian's python3-onnx checker with strict shape inference, and runs in
// onnxruntime-web with torchlet's predictions and log-probabilities within a stated
// tolerance. The weights come from the PyTorch twins (tests/helpers/zoo_interop.py), with
// batch norm statistics that are not 0 and 1 (which would hide a folding mistake) and the
// classifier fitted as a linear probe on training images, so that predictions spread over
// the digits and the logits over several units (one predicted class, or near-uniform
// outputs, would hide errors).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRawDataset, type RawSplit } from '../../src/data/mnist.js';
import { Dataset } from '../../src/dataset.js';
import { decodeModel } from '../../src/export/schema.js';
import { Model, toOnnx, zoo, type OnnxExportOptions, type ZooName } from '../../src/index.js';
import { agreement, checkOnnx, hasPythonOnnx } from './onnx.js';
import { MNIST_DIR } from './cli.js';
import { pythonHas, runPythonJson } from './python.js';
import { missing } from './requires.js';

/**
 * The largest log-probability difference allowed, relative to the largest log-probability
 * magnitude. Deep networks carry float32 rounding of their own: on these weights PyTorch's
 * float32 and float64 log-probabilities differ by up to 2.3e-5 of that magnitude
 * (efficientnet_b0, 10,000 test images), and onnxruntime-web and libtorch each round their
 * own way (and one of them with batch norm folded). 5e-4 is 20 times the former; a wrong
 * mapping gives differences of the order of the values themselves.
 */
const ZOO_LOGPROB_TOLERANCE = 5e-4;

/** torchlet's log-probabilities on the first `count` test images. */
async function reference(model: Model, test: RawSplit, count: number): Promise<{ logProbs: Float32Array; predictions: Uint8Array }> {
  const evalSet = Dataset.fromRaw({ ...test, count, images: test.images.subarray(0, count * 784), labels: test.labels.subarray(0, count) });
  const stats = await model.evaluate(evalSet, { logProbs: true }).finally(() => evalSet.dispose());
  return { logProbs: stats.logProbs!, predictions: stats.predictions };
}

/** Which exports of each model to run: batch norm folded into the convolutions, kept as nodes, or both. */
export interface ZooVariants {
  folded: boolean;
  unfolded: ReadonlySet<ZooName>;
}

export function zooOnnxSuite(names: ZooName[], count: number, { folded, unfolded }: ZooVariants): void {
  const dir = mkdtempSync(join(tmpdir(), 'torchlet-onnx-zoo-'));
  const files: string[] = [];
  let test: RawSplit;
  const skip = missing(pythonHas('torchvision'), '/usr/bin/python3 with torch and torchvision');
  beforeAll(async () => {
    test = (await loadRawDataset({})).test;
    if (!skip) runPythonJson(['tests/helpers/zoo_interop.py'], { action: 'onnx-weights', dir, models: names, data: MNIST_DIR });
  }, 300_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe.skipIf(skip).each(names)('%s', (name) => {
    it(`exports, and runs in onnxruntime-web like torchlet (${count.toLocaleString('en-US')} images)`, async () => {
      const model = Model.fromFile(zoo[name](), join(dir, `${name}-onnx.pt`));
      const expected = await reference(model, test, count);
      const variants: [string, OnnxExportOptions][] = [
        ...(folded ? [['folded', {}] as [string, OnnxExportOptions]] : []),
        ...(unfolded.has(name) ? [['unfolded', { foldBatchNorm: false }] as [string, OnnxExportOptions]] : []),
      ];
      try {
        for (const [variant, options] of variants) {
          const bytes = toOnnx(model.spec, model.stateTensors(), options);
          const ops = decodeModel(bytes).graph.node.map((n) => n.op_type);
          expect(ops).not.toContain('Dropout');
          if (variant === 'folded') expect(ops).not.toContain('BatchNormalization');
          const file = join(dir, `${name}-${variant}.onnx`);
          writeFileSync(file, bytes);
          files.push(file);
          const a = await agreement(bytes, model.spec, test.images, expected, { count });
          const spread = expected.logProbs.reduce((m, v) => Math.max(m, -v), 0);
          console.log(
            `${name} ${variant}: ${count} images, same predictions ${a.samePredictions}, max |log-prob delta| ${a.maxDelta.toExponential(2)} ` +
              `(log-probs down to ${(-spread).toFixed(2)}), ${new Set(expected.predictions).size} distinct predictions, ${(bytes.length / 1e6).toFixed(2)} MB`,
          );
          // The weights are fitted to tell digits apart (zoo_interop.py's probe), so the
          // equality of predictions covers many classes, not one answer repeated.
          expect(new Set(expected.predictions).size).toBeGreaterThanOrEqual(8);
          expect(a.samePredictions).toBe(true);
          // Relative to the largest log-probability's magnitude (at least 1): some of these
          // networks give log-probabilities of -50 and below, where float32 resolves no
          // better than 4e-6.
          expect(a.maxDelta / Math.max(1, spread)).toBeLessThan(ZOO_LOGPROB_TOLERANCE);
        }
      } finally {
        model.dispose();
      }
    }, 600_000);
  });

  // One checker process for every file: its start-up and the import of onnx dominate otherwise.
  it.skipIf(skip || missing(hasPythonOnnx, '/usr/bin/python3 with onnx (python3-onnx)'))('every exported file passes onnx.checker full_check and strict shape inference', () => {
    expect(files.length).toBeGreaterThanOrEqual(names.length);
    for (const r of checkOnnx(files)) expect(r, r.error).toMatchObject({ ok: true, ir_version: 8, opset: 17 });
  }, 300_000);
}
