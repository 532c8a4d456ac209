// Every layer type of the spec language through the exporter, on a spec that uses them all
// (nested sequentials, concat branches, a conv without bias, a batch norm that follows no
// conv, pooling whose sizes do not divide): checker, onnxruntime-web vs torchlet, dynamic
// batch sizes, and the errors for what cannot be exported. Plus the CLI and the library call.
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRawDataset, type RawSplit } from '../../src/data/mnist.js';
import { Dataset } from '../../src/dataset.js';
import { decodeModel } from '../../src/export/schema.js';
import { Model, OnnxExportError, createTrainer, defineModel, exportOnnx, layers as L, resolveRecipe, toOnnx, type Layer, type ModelSpec, type Recipe } from '../../src/index.js';
import { ROOT, finished, spawnCli } from '../helpers/cli.js';
import { LOGPROB_TOLERANCE, agreement, checkOnnx, hasPythonOnnx, normalise, runBatches, session } from '../helpers/onnx.js';
import { missing } from '../helpers/requires.js';

const everyLayer: ModelSpec = defineModel('every_layer', [
  L.conv2d(1, 6, 3, { padding: 1 }), // 28
  L.batchNorm2d(6),
  L.relu(),
  L.dropout2d(0.1),
  L.concat(
    L.sequential(L.conv2d(6, 4, 3, { padding: 1, bias: false }), L.batchNorm2d(4, { eps: 1e-3 }), L.relu()),
    L.sequential(L.conv2d(6, 4, 1), L.relu(), L.dropout(0.1)),
  ), // 8 x 28 x 28
  L.avgPool2d(2), // 14
  L.conv2d(8, 8, 3, { stride: 2 }), // 6
  L.maxPool2d(2, 1), // 5
  L.batchNorm2d(8), // after a pool: never folded
  L.adaptiveAvgPool2d([3, 2]), // 5 -> 3 and 5 -> 2: uneven windows
  L.flatten(), // 48
  L.linear(48, 16),
  L.relu(),
  L.dropout(0.2),
  L.linear(16, 10, { bias: false }),
  L.logSoftmax(),
]);

// Every conv2d and pooling field as a [height, width] pair: factorized 3x1 and 1x3 kernels,
// a grouped one, strides, paddings and dilations that differ per dimension, and pooling
// windows that are not square.
const nonSquare: ModelSpec = defineModel('non_square', [
  L.conv2d(1, 6, [3, 1], { padding: [1, 0], bias: false }), // 28 x 26
  L.batchNorm2d(6),
  L.relu(),
  L.maxPool2d([2, 1]), // 14 x 26
  L.conv2d(6, 6, [1, 3], { padding: [0, 1], groups: 3 }), // 14 x 26
  L.batchNorm2d(6),
  L.relu(),
  L.conv2d(6, 12, [5, 3], { stride: [2, 1], padding: [2, 0], dilation: [1, 2] }), // 7 x 22
  L.batchNorm2d(12),
  L.relu(),
  L.conv2d(12, 16, 3, { stride: [1, 2], padding: [2, 1], dilation: 2 }), // 7 x 10
  L.batchNorm2d(16),
  L.relu(),
  L.avgPool2d([1, 2], [1, 2], { padding: [0, 1] }), // 7 x 6
  L.globalAvgPool(),
  L.flatten(),
  L.linear(16, 10),
  L.logSoftmax(),
]);

const globalPool: ModelSpec = defineModel('global_pool', [L.conv2d(1, 10, 5, { stride: 2 }), L.relu(), L.globalAvgPool(), L.flatten()]);

const dir = mkdtempSync(join(tmpdir(), 'torchlet-onnx-layers-'));
let test: RawSplit;
let model: Model;
let reference: { logProbs: Float32Array; predictions: Uint8Array };
let nonSquareModel: Model;
let nonSquareReference: { logProbs: Float32Array; predictions: Uint8Array };
const COUNT = 1000;

beforeAll(async () => {
  test = (await loadRawDataset({})).test;
  // A few training steps so that the batch norms hold real running statistics (a fresh
  // model's are 0 and 1, which would hide a folding mistake).
  const trained = async (spec: ModelSpec, seed: number, count: number, recipe: Partial<Recipe>): Promise<[Model, { logProbs: Float32Array; predictions: Uint8Array }]> => {
    const m = new Model(spec, { seed });
    const train = Dataset.fromRaw({ ...test, count, images: test.images.subarray(0, count * 784), labels: test.labels.subarray(0, count) });
    const trainer = createTrainer(m, resolveRecipe({ epochs: 1, ...recipe }), false, train.size);
    await trainer.trainEpoch(train.handle, 0);
    trainer.dispose();
    train.dispose();
    const evalSet = Dataset.fromRaw({ ...test, count: COUNT, images: test.images.subarray(0, COUNT * 784), labels: test.labels.subarray(0, COUNT) });
    const stats = await m.evaluate(evalSet, { logProbs: true }).finally(() => evalSet.dispose());
    return [m, { logProbs: stats.logProbs!, predictions: stats.predictions }];
  };
  [model, reference] = await trained(everyLayer, 7, 512, { batchSize: 64 });
  // Enough steps that it tells the digits apart, so that equal predictions mean something.
  [nonSquareModel, nonSquareReference] = await trained(nonSquare, 8, 2048, { batchSize: 32, maxLr: 0.05 });
});

afterAll(() => {
  model.dispose();
  nonSquareModel.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('a spec using every layer type', () => {
  const variants = { folded: {}, unfolded: { foldBatchNorm: false }, preprocessing: { includePreprocessing: true } } as const;

  it('maps to the expected ONNX operators, folding only the batch norms that follow a conv', () => {
    const ops = (options: object) => decodeModel(toOnnx(everyLayer, model.stateTensors(), options)).graph.node.map((n) => n.op_type);
    const folded = ops(variants.folded);
    const unfolded = ops(variants.unfolded);
    expect(folded.filter((o) => o === 'BatchNormalization')).toHaveLength(1);
    expect(unfolded.filter((o) => o === 'BatchNormalization')).toHaveLength(3);
    for (const op of ['Conv', 'Relu', 'Concat', 'AveragePool', 'MaxPool', 'Slice', 'ReduceMean', 'Flatten', 'Gemm', 'LogSoftmax']) expect(folded).toContain(op);
    expect(folded).not.toContain('Dropout');
    expect(ops(variants.preprocessing).slice(0, 4)).toEqual(['Cast', 'Div', 'Sub', 'Div']);
    // The folded conv without a bias gains one; the weights keep their state_dict names.
    const init = decodeModel(toOnnx(everyLayer, model.stateTensors(), variants.folded)).graph.initializer.map((t) => t.name);
    expect(init).toEqual(expect.arrayContaining(['0.weight', '0.bias', '4.0.0.weight', '4.0.0.bias', '4.1.0.weight', '11.weight', '14.weight']));
    expect(init).not.toContain('14.bias');
  });

  it.skipIf(missing(hasPythonOnnx, '/usr/bin/python3 with onnx (python3-onnx)'))('passes the checker and strict shape inference in each variant', () => {
    const files = Object.entries(variants).map(([name, options]) => {
      const file = join(dir, `every-${name}.onnx`);
      exportOnnx(model, file, options);
      return file;
    });
    const globalFile = join(dir, 'global.onnx');
    using small = new Model(globalPool, { seed: 1 });
    exportOnnx(small, globalFile);
    for (const r of checkOnnx([...files, globalFile])) {
      expect(r.error).toBeUndefined();
      expect(Object.values(r.outputs!)).toEqual([['batch', 10]]);
    }
  });

  it(`runs in onnxruntime-web like torchlet (${COUNT} images, each variant)`, async () => {
    for (const [name, options] of Object.entries(variants)) {
      const r = await agreement(toOnnx(everyLayer, model.stateTensors(), options), everyLayer, test.images, reference, { count: COUNT, pixels: name === 'preprocessing' });
      console.log(`every_layer ${name}: max |log-prob delta| ${r.maxDelta.toExponential(2)} over ${r.count} images`);
      expect(r.maxDelta).toBeLessThan(LOGPROB_TOLERANCE);
      expect(r.samePredictions).toBe(true);
    }
  });

  it('has a dynamic batch dimension: 1, 7 and 64 images give the rows of the full batch', async () => {
    const s = await session(toOnnx(everyLayer, model.stateTensors()));
    const input = normalise(test.images.subarray(0, 64 * 784), everyLayer);
    const all = await runBatches(s, input, everyLayer, 64, 64);
    for (const n of [1, 7]) {
      const some = await runBatches(s, input, everyLayer, n, n);
      expect(Array.from(some)).toEqual(Array.from(all.subarray(0, n * 10)));
    }
    await s.release();
  });
});

describe('non-square kernels, strides, paddings, dilations and pooling windows', () => {
  it('map to per-dimension Conv and pooling attributes', () => {
    const nodes = decodeModel(toOnnx(nonSquare, nonSquareModel.stateTensors())).graph.node.filter((n) => ['Conv', 'MaxPool', 'AveragePool'].includes(n.op_type));
    const pairs = ['kernel_shape', 'strides', 'pads', 'dilations'];
    const attributes = nodes.map((n) => [n.op_type, Object.fromEntries(n.attribute.filter((a) => pairs.includes(a.name)).map((a) => [a.name, (a.ints ?? []).map(Number)]))]);
    expect(attributes).toEqual([
      ['Conv', { kernel_shape: [3, 1], strides: [1, 1], pads: [1, 0, 1, 0], dilations: [1, 1] }],
      ['MaxPool', { kernel_shape: [2, 1], strides: [2, 1], pads: [0, 0, 0, 0] }],
      ['Conv', { kernel_shape: [1, 3], strides: [1, 1], pads: [0, 1, 0, 1], dilations: [1, 1] }],
      ['Conv', { kernel_shape: [5, 3], strides: [2, 1], pads: [2, 0, 2, 0], dilations: [1, 2] }],
      ['Conv', { kernel_shape: [3, 3], strides: [1, 2], pads: [2, 1, 2, 1], dilations: [2, 2] }],
      ['AveragePool', { kernel_shape: [1, 2], strides: [1, 2], pads: [0, 1, 0, 1] }],
    ]);
  });

  const variants = { folded: {}, unfolded: { foldBatchNorm: false } } as const;

  it(`run in onnxruntime-web like torchlet (${COUNT} images, folded and unfolded)`, async () => {
    // Equal predictions mean something only if the model tells digits apart.
    console.log(`non_square: ${new Set(nonSquareReference.predictions).size} distinct predictions over ${COUNT} images`);
    expect(new Set(nonSquareReference.predictions).size).toBeGreaterThanOrEqual(8);
    for (const [name, options] of Object.entries(variants)) {
      const r = await agreement(toOnnx(nonSquare, nonSquareModel.stateTensors(), options), nonSquare, test.images, nonSquareReference, { count: COUNT });
      console.log(`non_square ${name}: max |log-prob delta| ${r.maxDelta.toExponential(2)} over ${r.count} images`);
      expect(r.maxDelta).toBeLessThan(LOGPROB_TOLERANCE);
      expect(r.samePredictions).toBe(true);
    }
  });

  it.skipIf(missing(hasPythonOnnx, '/usr/bin/python3 with onnx (python3-onnx)'))('pass the checker and strict shape inference, folded and unfolded', () => {
    const files = Object.entries(variants).map(([name, options]) => {
      const file = join(dir, `non-square-${name}.onnx`);
      exportOnnx(nonSquareModel, file, options);
      return file;
    });
    for (const r of checkOnnx(files)) {
      expect(r.error).toBeUndefined();
      expect(Object.values(r.outputs!)).toEqual([['batch', 10]]);
    }
  });

  it('a malformed pair, a pooling padding over half its window, or a kernel larger than its input in one dimension, is an export error naming the layer', () => {
    const bad = defineModel('bad', [L.conv2d(1, 2, [3, 0]), L.flatten()]);
    expect(() => toOnnx(bad, {})).toThrow(new OnnxExportError("layers[0]: 'kernel' must be a positive integer or a [height, width] pair of them, got [3, 0]"));
    const pool = defineModel('pool', [L.maxPool2d([3, 1], 1, { padding: [1, 1] }), L.flatten()]);
    expect(() => toOnnx(pool, {})).toThrow(new OnnxExportError("layers[0]: 'padding' must be between 0 and half the kernel, got padding 1 for kernel [3, 1]"));
    const tall = defineModel('tall', [L.conv2d(1, 2, [29, 1]), L.flatten()]);
    expect(() => toOnnx(tall, {})).toThrow("layers[0] (conv2d): kernel 29x1 (dilation 1x1) is larger than its input [1, 28, 28] padded by 0x0");
  });
});

describe('what cannot be exported is an error naming it, and no file', () => {
  it('an unmapped layer type', () => {
    const spec = defineModel('future', [L.conv2d(1, 2, 3), { type: 'frobnicate' } as unknown as Layer, L.flatten()]);
    expect(() => toOnnx(spec, {})).toThrow(OnnxExportError);
    expect(() => toOnnx(spec, { '0.weight': { shape: [2, 1, 3, 3], data: new Float32Array(18) }, '0.bias': { shape: [2], data: new Float32Array(2) } })).toThrow(
      "layers[1] (frobnicate): no ONNX mapping for layer type 'frobnicate' yet",
    );
  });

  it('weights that are missing or misshaped, and a spec whose output is not [batch, classes]', () => {
    const spec = defineModel('tiny', [L.conv2d(1, 2, 3), L.flatten(), L.linear(1352, 10)]);
    expect(() => toOnnx(spec, {})).toThrow("layers[0]: the weights have no '0.weight'");
    expect(() => toOnnx(spec, { '0.weight': { shape: [2, 1, 5, 5], data: new Float32Array(50) } })).toThrow(
      "layers[0]: weight '0.weight' has shape [2, 1, 5, 5], the spec needs [2, 1, 3, 3]",
    );
    const noFlatten = defineModel('no_flatten', [L.conv2d(1, 10, 28)]);
    const weights = { '0.weight': { shape: [10, 1, 28, 28], data: new Float32Array(7840) }, '0.bias': { shape: [10], data: new Float32Array(10) } };
    expect(() => toOnnx(noFlatten, weights)).toThrow("the model's output must be [batch, classes], got [batch, 10, 1, 1]");
  });

  it('a failed export leaves no file behind', () => {
    const file = join(dir, 'never.onnx');
    const broken = { spec: defineModel('broken', [{ type: 'frobnicate' } as unknown as Layer]), stateTensors: () => ({}) } as unknown as Model;
    expect(() => exportOnnx(broken, file)).toThrow(OnnxExportError);
    expect(existsSync(file)).toBe(false);
  });
});

describe('torchlet export', () => {
  it('writes the file asked for: here unfolded, with the preprocessing in the graph', async () => {
    const file = join(dir, 'cli.onnx');
    const r = await finished(spawnCli(['export', '--model', 'super_light', '--weights', join(ROOT, 'weights', 'super_light.pt'), '--format', 'onnx', '--out', file, '--include-preprocessing', '--no-fold-batchnorm']));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*cli\.onnx \(\d+ bytes, 4842 parameters; IR 8, opset 17\)\ninput 'pixels' uint8 \[batch, 1, 28, 28\]/);
    const m = decodeModel(readFileSync(file));
    expect(m.graph.input[0]!.name).toBe('pixels');
    expect(m.graph.node.some((n) => n.op_type === 'BatchNormalization')).toBe(true);
  });

  it('refuses bad input with exit code 2 and a message, never a stack trace', async () => {
    const out = join(dir, 'bad.onnx');
    const weights = join(ROOT, 'weights', 'super_light.pt');
    const cases: [string[], RegExp][] = [
      [['--model', 'light', '--weights', weights, '--out', out], /cannot load weights .*does not match this model's architecture[\s\S]*these weights fit --model super_light/],
      [['--model', 'super_light', '--weights', weights, '--format', 'tflite', '--out', out], /argument 'tflite' is invalid/],
    ];
    for (const [args, pattern] of cases) {
      const r = await finished(spawnCli(['export', ...args]));
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(existsSync(out)).toBe(false);
  });
});
