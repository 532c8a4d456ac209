import { describe, expect, it } from 'vitest';
import { countParams, defineModel, getThreads, layers as L, Model, models, DOCUMENTED_PARAMS, type ModelSpec } from '../src/index.js';

const tiny = (layerList: ModelSpec['layers'], input = { channels: 1, height: 8, width: 8 }): ModelSpec => ({ name: 'tiny', input, layers: layerList });

describe('model specs', () => {
  it.each(Object.entries(models))('%s has its documented parameter count, natively and in TypeScript', (name, spec) => {
    const documented = DOCUMENTED_PARAMS[name as keyof typeof DOCUMENTED_PARAMS];
    expect(countParams(spec)).toBe(documented);
    expect(documented).toBeLessThan(8000);
    const model = new Model(spec);
    expect(model.numParams()).toBe(documented);
    model.dispose();
  });

  it('counts parameters of every layer kind the same way libtorch does', () => {
    const spec = tiny([
      L.concat(L.sequential(L.conv2d(1, 3, 3, { padding: 1 }), L.batchNorm2d(3)), L.conv2d(1, 2, 1, { bias: false })),
      L.relu(),
      L.dropout2d(0.1),
      L.avgPool2d(2),
      L.maxPool2d(2, 1),
      L.globalAvgPool(),
      L.flatten(),
      L.linear(5, 4),
      L.dropout(0.2),
      L.linear(4, 3, { bias: false }),
      L.logSoftmax(),
    ]);
    const model = new Model(spec);
    expect(model.numParams()).toBe(countParams(spec));
    expect(model.predict(new Uint8Array(64)).probabilities).toHaveLength(3);
    model.dispose();
  });

  it('predicts one image the same on the serial small-batch path as inside a batch, and restores the thread count', () => {
    const threads = getThreads();
    const model = new Model(models.super_light, { seed: 3 });
    const images = Uint8Array.from({ length: 8 * 784 }, (_, i) => (i * 37) % 256);
    const batch = model.handle.predict(images);
    const single = model.handle.predict(images.subarray(784, 2 * 784));
    for (let k = 0; k < 10; k++) expect(single[k]).toBeCloseTo(batch[10 + k]!, 5);
    expect(getThreads()).toBe(threads);
    model.dispose();
  });

  it('names state_dict entries like the equivalent nn.Sequential', () => {
    const model = new Model(models.super_light);
    const shapes = model.stateShapes();
    expect(Object.keys(shapes).slice(0, 7)).toEqual([
      '0.weight',
      '0.bias',
      '1.weight',
      '1.bias',
      '1.running_mean',
      '1.running_var',
      '1.num_batches_tracked',
    ]);
    expect(shapes['0.weight']).toEqual([4, 1, 3, 3]);
    expect(shapes['1.num_batches_tracked']).toEqual([]);
    model.dispose();
  });

  it('takes non-square kernels, strides, paddings and dilations as [height, width], as nn.Conv2d does', () => {
    const spec = tiny(
      [
        L.conv2d(1, 4, [3, 1], { padding: [1, 0] }), // 8 x 5
        L.conv2d(4, 4, [1, 3], { padding: [0, 1], groups: 2 }), // 8 x 5
        L.conv2d(4, 6, [3, 2], { stride: [2, 1], padding: [1, 0], dilation: [1, 2] }), // 4 x 3
        L.conv2d(6, 10, [4, 3]), // 1 x 1
        L.flatten(),
        L.logSoftmax(),
      ],
      { channels: 1, height: 8, width: 5 },
    );
    const model = new Model(spec);
    expect(model.numParams()).toBe(countParams(spec));
    expect(countParams(spec)).toBe(4 * 3 + 4 + (4 * 2 * 3 + 4) + (6 * 4 * 3 * 2 + 6) + (10 * 6 * 4 * 3 + 10));
    expect(Object.values(model.stateShapes())).toEqual([[4, 1, 3, 1], [4], [4, 2, 1, 3], [4], [6, 4, 3, 2], [6], [10, 6, 4, 3], [10]]);
    expect(model.predict(new Uint8Array(40)).probabilities).toHaveLength(10);
    model.dispose();
    // Pooling windows too: 8 x 5 -> max [2, 1] -> 4 x 5 -> average [1, 3] stride [1, 2] padding [0, 1] -> 4 x 3.
    using pooled = new Model(tiny([L.maxPool2d([2, 1]), L.avgPool2d([1, 3], [1, 2], { padding: [0, 1] }), L.conv2d(1, 10, [4, 3]), L.flatten()], { channels: 1, height: 8, width: 5 }));
    expect(pooled.numParams()).toBe(130);
    // A 3x1 kernel fits an input one pixel wide.
    using narrow = new Model(tiny([L.conv2d(1, 2, [3, 1]), L.flatten()], { channels: 1, height: 3, width: 1 }));
    expect(narrow.numParams()).toBe(8);
  });

  it('names concat branches by index too', () => {
    const model = new Model(tiny([L.concat(L.conv2d(1, 2, 3), L.sequential(L.conv2d(1, 1, 3), L.batchNorm2d(1))), L.globalAvgPool(), L.flatten()]));
    expect(Object.keys(model.stateShapes())).toEqual([
      '0.0.weight',
      '0.0.bias',
      '0.1.0.weight',
      '0.1.0.bias',
      '0.1.1.weight',
      '0.1.1.bias',
      '0.1.1.running_mean',
      '0.1.1.running_var',
      '0.1.1.num_batches_tracked',
    ]);
    model.dispose();
  });
});

describe('spec errors name the layer and the shapes', () => {
  it('rejects a kernel larger than its input', () => {
    expect(() => new Model(tiny([L.conv2d(1, 2, 3), L.conv2d(2, 2, 7)]))).toThrow(/layers\[1\] \(conv2d 2->2, kernel 7.*larger than its padded input \[1, 2, 6, 6\]/);
  });

  it('rejects a non-square kernel larger than its input in either dimension', () => {
    expect(() => new Model(tiny([L.conv2d(1, 2, [3, 9]), L.flatten()]))).toThrow(
      /layers\[0\] \(conv2d 1->2, kernel \[3, 9\], stride 1, padding 0\): kernel 3x9 is larger than its padded input \[1, 1, 8, 8\] \(padded 8x8\)/,
    );
    expect(() => new Model(tiny([L.conv2d(1, 2, [11, 1], { padding: [1, 0] }), L.flatten()]))).toThrow(/kernel 11x1 is larger than its padded input \[1, 1, 8, 8\] \(padded 10x8\)/);
    expect(() => new Model(tiny([L.conv2d(1, 2, 3, { dilation: [1, 4] }), L.flatten()]))).toThrow(
      /\(conv2d 1->2, kernel 3, stride 1, padding 0, dilation \[1, 4\]\): kernel 3x3 \(dilated 3x9\) is larger than its padded input/,
    );
  });

  it('rejects a non-square pooling window larger than its input, or padded by more than half of it', () => {
    expect(() => new Model(tiny([L.maxPool2d([2, 9]), L.flatten()]))).toThrow(/layers\[0\] \(maxpool2d kernel \[2, 9\], stride \[2, 9\]\): pooling window is larger than its input \[1, 1, 8, 8\]/);
    expect(() => new Model(tiny([L.avgPool2d([3, 1], 1, { padding: [1, 1] }), L.flatten()]))).toThrow(
      "spec.layers[0]: 'padding' must be between 0 and half the kernel, got padding 1 for kernel [3, 1]",
    );
    const threeDims = { type: 'maxpool2d', kernel: [2, 2, 2] } as unknown as ModelSpec['layers'][number];
    expect(() => new Model(tiny([threeDims, L.flatten()]))).toThrow("spec.layers[0]: 'kernel' must be a positive integer or a [height, width] pair of them, got an array of 3");
  });

  it('rejects channels that do not chain', () => {
    expect(() => new Model(tiny([L.conv2d(1, 4, 3), L.conv2d(5, 2, 3)]))).toThrow(/layers\[1\] \(conv2d 5->2.*expects 5 input channels.*\[1, 4, 6, 6\]/);
    expect(() => new Model(tiny([L.conv2d(1, 4, 3), L.batchNorm2d(3)]))).toThrow(/batchnorm2d 3\) expects 3 input channels/);
  });

  it('rejects a linear layer that does not fit, suggesting flatten', () => {
    expect(() => new Model(tiny([L.conv2d(1, 2, 3), L.linear(72, 10)]))).toThrow(/linear 72->10\) expects input \[batch, 72\], got \[1, 2, 6, 6\] \(add a flatten layer/);
  });

  it('rejects a pooling window larger than its input', () => {
    expect(() => new Model(tiny([L.maxPool2d(9)]))).toThrow(/maxpool2d kernel 9.*larger than its input \[1, 1, 8, 8\]/);
  });

  it('rejects concat branches whose spatial sizes differ', () => {
    expect(() => new Model(tiny([L.concat(L.conv2d(1, 2, 3), L.conv2d(1, 2, 1)), L.flatten()]))).toThrow(/concat: branch 1 produces \[1, 2, 8, 8\] but branch 0 produces \[1, 2, 6, 6\]/);
  });

  it('rejects an output that is not [batch, classes]', () => {
    expect(() => new Model(tiny([L.conv2d(1, 2, 3)]))).toThrow(/output must be \[batch, classes\], got \[1, 2, 6, 6\]/);
  });

  it('rejects unknown layer types and bad values with the path of the layer', () => {
    const bad = tiny([L.sequential(L.relu(), { type: 'conv3d' } as unknown as ModelSpec['layers'][number])]);
    expect(() => new Model(bad)).toThrow(/spec\.layers\[0\]\.layers\[1\]: unknown layer type 'conv3d'/);
    expect(() => new Model(tiny([L.dropout(1.5)]))).toThrow(RangeError);
    expect(() => new Model(tiny([L.conv2d(1, 0, 3)]))).toThrow(/'out' must be a positive integer/);
    expect(() => new Model(tiny([{ type: 'conv2d', in: '1', out: 2, kernel: 3 } as unknown as ModelSpec['layers'][number]]))).toThrow(TypeError);
    expect(() => new Model(tiny([]))).toThrow(/spec.layers is empty/);
  });

  it('rejects a malformed [height, width] pair, natively and in countParams, naming the layer and the value', () => {
    const conv = (fields: Record<string, unknown>): ModelSpec =>
      tiny([L.sequential(L.relu(), { type: 'conv2d', in: 1, out: 2, kernel: 3, ...fields } as unknown as ModelSpec['layers'][number]), L.flatten()]);
    const cases: [Record<string, unknown>, string, ErrorConstructor][] = [
      [{ kernel: [3] }, "'kernel' must be a positive integer or a [height, width] pair of them, got an array of 1", RangeError],
      [{ kernel: [3, 1, 1] }, "'kernel' must be a positive integer or a [height, width] pair of them, got an array of 3", RangeError],
      [{ kernel: [3, 0] }, "'kernel' must be a positive integer or a [height, width] pair of them, got [3, 0]", RangeError],
      [{ kernel: [3, 1.5] }, "'kernel' must be a positive integer or a [height, width] pair of them, got [3, 1.5]", RangeError],
      [{ kernel: ['3', 1] }, "'kernel' must be a positive integer or a [height, width] pair of them, got ['3', 1]", TypeError],
      [{ stride: [1, -2] }, "'stride' must be a positive integer or a [height, width] pair of them, got [1, -2]", RangeError],
      [{ padding: [-1, 0] }, "'padding' must be an integer >= 0 or a [height, width] pair of them, got [-1, 0]", RangeError],
      [{ dilation: [] }, "'dilation' must be a positive integer or a [height, width] pair of them, got an array of 0", RangeError],
      [{ dilation: 0 }, "'dilation' must be a positive integer or a [height, width] pair of them, got 0", RangeError],
    ];
    for (const [fields, message, type] of cases) {
      const spec = conv(fields);
      const expected = `spec.layers[0].layers[1]: ${message}`;
      expect(() => new Model(spec), JSON.stringify(fields)).toThrow(expected);
      expect(() => new Model(spec)).toThrow(type);
      expect(() => countParams(spec), JSON.stringify(fields)).toThrow(expected);
      expect(() => countParams(spec)).toThrow(type);
    }
  });

  it('checks normalisation statistics against the channel count', () => {
    expect(() => new Model(defineModel('x', [L.flatten()], { channels: 1, height: 2, width: 2, mean: [0.1, 0.2], std: [1, 1] }))).toThrow(/2 values for 1 channels/);
  });
});
