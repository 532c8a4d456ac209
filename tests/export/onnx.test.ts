// ONNX export, verified by the real runtimes: Debian's python3-onnx checker (full check and
// strict shape inference) and onnxruntime-web's WebAssembly build in Node, which must agree
// with torchlet on the full MNIST test set.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeModel } from '../../src/export/schema.js';
import { IR_VERSION, OPSET, Model, countParams, models, type ModelName, type OnnxExportOptions } from '../../src/index.js';
import { ROOT } from '../helpers/cli.js';
import { LOGPROB_TOLERANCE, agreement, checkOnnx, exportTestBed, hasPythonOnnx } from '../helpers/onnx.js';
import { missing } from '../helpers/requires.js';


const { dir, test, testSet } = exportTestBed('torchlet-onnx-');

const BUILT_IN = Object.keys(models) as ModelName[];
const VARIANTS: { name: string; options: OnnxExportOptions }[] = [
  { name: 'folded', options: {} },
  { name: 'unfolded', options: { foldBatchNorm: false } },
];

describe.each(BUILT_IN)('%s with its released weights', (name) => {
  const spec = models[name];
  const files: Record<string, string> = {};

  it('exports folded, unfolded and with preprocessing: IR 8, opset 17, float32 initializers, dynamic batch, no dropout', () => {
    const model = Model.fromFile(spec, join(ROOT, 'weights', `${name}.pt`));
    try {
      for (const { name: variant, options } of [...VARIANTS, { name: 'preprocessing', options: { includePreprocessing: true } }]) {
        files[variant] = join(dir, `${name}-${variant}.onnx`);
        const size = model.exportOnnx(files[variant]!, options);
        expect(size).toBe(readFileSync(files[variant]!).length);
      }
    } finally {
      model.dispose();
    }
    const folded = decodeModel(readFileSync(files.folded!));
    const unfolded = decodeModel(readFileSync(files.unfolded!));
    for (const m of [folded, unfolded]) {
      expect(m.ir_version).toBe(IR_VERSION);
      expect(m.opset_import).toEqual([{ domain: '', version: OPSET }]);
      expect(m.graph.node.map((n) => n.op_type)).not.toContain('Dropout');
      expect(m.graph.initializer.every((t) => t.data_type === 1 || t.data_type === 7)).toBe(true);
      expect(m.graph.input[0]!.type.tensor_type.shape.dim[0]).toEqual({ dim_param: 'batch' });
      expect(m.graph.output[0]!.name).toBe('log_probs');
      const meta = Object.fromEntries(m.metadata_props.map((p) => [p.key, p.value]));
      expect(JSON.parse(meta['torchlet.normalisation']!)).toEqual({ scale: 1 / 255, mean: [0.1307], std: [0.3081] });
      expect(JSON.parse(meta['torchlet.spec']!)).toEqual(spec);
    }
    const batchNorms = JSON.stringify(spec).split('"batchnorm2d"').length - 1;
    expect(folded.graph.node.filter((n) => n.op_type === 'BatchNormalization')).toHaveLength(0);
    expect(unfolded.graph.node.filter((n) => n.op_type === 'BatchNormalization')).toHaveLength(batchNorms);
    // Unfolded, the float initializers are the state_dict's floats (parameters and running
    // statistics); folding removes the batch norms' four values per channel (every conv here has a bias).
    const floats = (m: typeof folded) => m.graph.initializer.filter((t) => t.data_type === 1).reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
    const bnChannels = spec.layers.reduce((n, l) => n + (l.type === 'batchnorm2d' ? l.features : 0), 0);
    expect(floats(unfolded)).toBe(countParams(spec) + 2 * bnChannels);
    expect(floats(folded)).toBe(countParams(spec) - 2 * bnChannels);
  });

  it.skipIf(missing(hasPythonOnnx, '/usr/bin/python3 with onnx (python3-onnx)'))('passes onnx.checker full_check and strict shape inference', () => {
    const results = checkOnnx(Object.values(files));
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.ir_version).toBe(8);
      expect(r.opset).toBe(17);
      expect(Object.values(r.outputs!)).toEqual([['batch', 10]]);
    }
    expect(results.find((r) => r.file === files.preprocessing)!.inputs).toEqual({ pixels: ['batch', 1, 28, 28] });
  });

  // The default export (folded) runs on the whole test set here; the other variants on the
  // first 2,000 images, to keep `npm test` short: tests/faults/onnx-full.test.ts (in .ci/run)
  // runs them on all 10,000.
  it('onnxruntime-web agrees with torchlet on all 10,000 test images (folded; 2,000 for the other variants)', async () => {
    const model = Model.fromFile(spec, join(ROOT, 'weights', `${name}.pt`));
    const reference = await model.evaluate(testSet(), { logProbs: true }).finally(() => model.dispose());
    expect(reference.count).toBe(10_000);
    for (const [variant, count] of [['folded', 10_000], ['unfolded', 2_000], ['preprocessing', 2_000]] as const) {
      const r = await agreement(readFileSync(files[variant]!), spec, test().images, { logProbs: reference.logProbs!, predictions: reference.predictions }, {
        count,
        pixels: variant === 'preprocessing',
      });
      console.log(`${name} ${variant}: max |log-prob delta| ${r.maxDelta.toExponential(2)} over ${r.count} images`);
      expect(r.maxDelta).toBeLessThan(LOGPROB_TOLERANCE);
      expect(r.samePredictions).toBe(true);
    }
  });
});
