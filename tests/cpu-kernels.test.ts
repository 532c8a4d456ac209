// torchlet's own CPU paths (channels-last convolutions, the fused batch norm, convolution
// kernels cropped to small inputs, the fused attention) change how a result is computed, never what it is. With
// each switched off in turn, zoo models whose 28x28 input shrinks to 1x1 maps (where the crop
// applies) and that have batch norm + ReLU (where the fusion applies) must still pass the
// PyTorch interop checks that tests/zoo.test.ts runs with all on: equal logits, and one SGD
// step as close to PyTorch's exact (float64) step as its own float32 step is.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dataset, DEFAULT_CPU_KERNELS, defineModel, getCpuKernels, layers as L, Model, native, setCpuKernels, zoo, type CpuKernels, type ModelSpec } from '../src/index.js';
import { zooInteropSuite } from './helpers/zoo-interop.js';


describe('CPU kernel switches', () => {
  afterAll(() => setCpuKernels(DEFAULT_CPU_KERNELS));

  it('start all on, set only what is given, and refuse unknown switches and non-booleans without changing any', () => {
    expect(getCpuKernels()).toEqual(DEFAULT_CPU_KERNELS);
    expect(setCpuKernels({ cropConvs: false })).toEqual({ ...DEFAULT_CPU_KERNELS, cropConvs: false });
    expect(() => setCpuKernels({ cropConvs: true, fast: true } as Partial<CpuKernels>)).toThrow(/unknown switch 'fast'/);
    expect(() => setCpuKernels({ channelsLast: false, fusedBatchNorm: 'no' } as unknown as Partial<CpuKernels>)).toThrow(/'fusedBatchNorm' must be a boolean, got string/);
    expect(getCpuKernels()).toEqual({ ...DEFAULT_CPU_KERNELS, cropConvs: false });
  });
});

// Each crop case on a 3x2 input: a stride-2 conv whose output reads two of three columns of
// taps; a grouped, dilated, non-square kernel on a 1-pixel-wide map (one of five column
// taps); a conv with bias on a 2x1 map (rows whole, one column of taps). The reference is
// libtorch's own convolution with the crop switched off.
const cropProbe = defineModel(
  'crop_probe',
  [
    L.conv2d(4, 8, 3, { padding: 1 }),
    L.conv2d(8, 8, 3, { stride: 2, padding: 1, bias: false }),
    L.batchNorm2d(8),
    L.relu(),
    L.conv2d(8, 8, [3, 5], { padding: [1, 4], dilation: [1, 2], groups: 2 }),
    L.relu(),
    L.conv2d(8, 6, 3, { padding: 1 }),
    L.flatten(),
    L.linear(12, 10),
    L.logSoftmax(),
  ],
  { channels: 4, height: 3, width: 2 },
);

async function cropProbeRun(cropConvs: boolean): Promise<{ logProbs: Float32Array; state: Record<string, Float32Array> }> {
  setCpuKernels({ ...DEFAULT_CPU_KERNELS, cropConvs });
  const n = 32;
  const pixels = new Uint8Array(n * 24).map((_, i) => (i * 97 + (i >> 3) * 13) % 256);
  const labels = new Uint8Array(n).map((_, i) => i % 10);
  const model = new Model(cropProbe, { seed: 2 });
  const data = Dataset.fromArrays(pixels, labels, [n, 4, 3, 2]);
  const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 }, batchSize: n, seed: 1 });
  try {
    await trainer.trainEpoch(data.handle, 0);
    await trainer.trainEpoch(data.handle, 1);
    return { logProbs: model.logProbs(pixels), state: Object.fromEntries(Object.entries(model.stateTensors()).map(([k, t]) => [k, t.data])) };
  } finally {
    trainer.dispose();
    data.dispose();
    model.dispose();
  }
}

function maxAbsDiff(a: Record<string, Float32Array>, b: Record<string, Float32Array>): number {
  let worst = 0;
  for (const [k, x] of Object.entries(a)) {
    const y = b[k];
    expect(y, k).toBeDefined();
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs((x[i] ?? 0) - (y?.[i] ?? Number.NaN)));
  }
  return worst;
}

describe('convolution kernels cropped to small inputs', () => {
  afterAll(() => setCpuKernels(DEFAULT_CPU_KERNELS));

  it('give the same log-probabilities and the same weights after two SGD steps as the whole kernels', async () => {
    const cropped = await cropProbeRun(true);
    const whole = await cropProbeRun(false);
    expect(maxAbsDiff({ p: cropped.logProbs }, { p: whole.logProbs })).toBeLessThan(1e-5);
    expect(maxAbsDiff(cropped.state, whole.state)).toBeLessThan(1e-5);
    // The weights moved, so the comparison covers the gradients too.
    const start = new Model(cropProbe, { seed: 2 });
    const before = Object.fromEntries(Object.entries(start.stateTensors()).map(([k, t]) => [k, t.data]));
    start.dispose();
    expect(maxAbsDiff(before, whole.state)).toBeGreaterThan(1e-3);
  });
});

const MODELS = ['resnet18', 'mobilenet_v3_small'] as const;
describe.each([
  ['no kernel crop', { cropConvs: false }],
  ['no fused batch norm', { fusedBatchNorm: false }],
  ['no channels-last', { channelsLast: false }],
  ['no inference plan', { inferencePlan: false }],
] as const)('with %s', (label, off) => {
  beforeAll(() => setCpuKernels({ ...DEFAULT_CPU_KERNELS, ...off }));
  afterAll(() => setCpuKernels(DEFAULT_CPU_KERNELS));
  zooInteropSuite([...MODELS], new Set(MODELS), undefined, `zoo models (${label})`);
});

// The ViT's attention through libtorch's batched matmuls instead of the fused kernel
// (native/attention.cc), which tests/zoo.test.ts covers with it on.
describe('with no fused attention', () => {
  beforeAll(() => setCpuKernels({ ...DEFAULT_CPU_KERNELS, fusedAttention: false }));
  afterAll(() => setCpuKernels(DEFAULT_CPU_KERNELS));
  zooInteropSuite(['vit'], new Set(['vit']), undefined, 'the ViT (no fused attention)');
});

// With dropout, which the interop tests leave out: both paths draw the same hash masks, so
// the fused kernel's dropout, in the forward pass and in its own backward, must land on the
// weights that libtorch's autograd through the unfused ops gives.
async function vitSteps(fusedAttention: boolean, dropout = 0.3): Promise<Record<string, Float32Array>> {
  setCpuKernels({ ...DEFAULT_CPU_KERNELS, fusedAttention });
  const n = 32;
  const pixels = new Uint8Array(n * 784).map((_, i) => (i * 97 + (i >> 5) * 13) % 256);
  const labels = new Uint8Array(n).map((_, i) => i % 10);
  const model = new Model(zoo.vit({ depth: 2, dropout }), { seed: 4 });
  const data = Dataset.fromArrays(pixels, labels, [n, 1, 28, 28]);
  const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 }, batchSize: 16, seed: 1 });
  try {
    await trainer.trainEpoch(data.handle, 0);
    return Object.fromEntries(Object.entries(model.stateTensors()).map(([k, t]) => [k, t.data]));
  } finally {
    trainer.dispose();
    data.dispose();
    model.dispose();
  }
}

describe('fused attention with dropout', () => {
  afterAll(() => setCpuKernels(DEFAULT_CPU_KERNELS));

  it('lands on the same weights after two SGD steps as the unfused ops with the same masks, and the masks matter', async () => {
    const fused = await vitSteps(true);
    const unfused = await vitSteps(false);
    expect(maxAbsDiff(fused, unfused)).toBeLessThan(1e-5);
    // Without dropout the same steps land elsewhere, so the comparison above saw the masks.
    expect(maxAbsDiff(await vitSteps(true, 0), fused)).toBeGreaterThan(1e-3);
  });
});

// The fused SGD step (native/sgd_step.cc) against libtorch's own, bit for bit: tests/optim.test.ts
// holds both to PyTorch's fixtures on 7 values, which only the kernel's scalar tail sees, so
// here the vector body runs too (1,037 values: 129 vectors and a tail of 5), under every
// option, and in training, where the gradients come from channels-last convolutions.
describe('the fused SGD step', () => {
  afterAll(() => setCpuKernels(DEFAULT_CPU_KERNELS));
  const n = 1037, steps = 4;
  let s = 7;
  const uniform = (): number => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const params = Float32Array.from({ length: n }, uniform);
  const grads = Float32Array.from({ length: n * steps }, uniform);

  it.each([
    ['no momentum', { type: 'sgd', lr: 0.1 }, false],
    ['weight decay', { type: 'sgd', lr: 0.1, weightDecay: 5e-4 }, false],
    ['momentum with dampening', { type: 'sgd', lr: 0.05, momentum: 0.9, dampening: 0.1 }, false],
    ['nesterov with weight decay', { type: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }, false],
    ['momentum cycled by OneCycle', { type: 'sgd', lr: 0.05, momentum: 0.9 }, true],
  ] as const)('%s: the same weights after every step as libtorch\'s step', (_, optimizer, cycleMomentum) => {
    const run = (fusedOptimizer: boolean): Float32Array => {
      setCpuKernels({ ...DEFAULT_CPU_KERNELS, fusedOptimizer });
      return native().optimizerSteps({ optimizer, scheduler: { type: 'onecycle', maxLr: 0.1, totalSteps: steps, cycleMomentum }, params, grads });
    };
    const fused = run(true), unfused = run(false);
    expect(fused.length).toBe(n * steps);
    const differing = fused.findIndex((v, i) => !Object.is(v, unfused[i]));
    expect(differing, `first differing value at ${differing}`).toBe(-1);
    expect(fused.subarray((steps - 1) * n).some((v, i) => v !== params[i])).toBe(true);
  });

  async function resnetSteps(fusedEpochs: readonly boolean[]): Promise<Record<string, Float32Array>> {
    const count = 16;
    const pixels = new Uint8Array(count * 784).map((_, i) => (i * 97 + (i >> 5) * 13) % 256);
    const labels = new Uint8Array(count).map((_, i) => i % 10);
    const model = new Model(zoo.resnet18(), { seed: 5 });
    const data = Dataset.fromArrays(pixels, labels, [count, 1, 28, 28]);
    const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }, batchSize: 8, seed: 1 });
    try {
      for (const [epoch, fusedOptimizer] of fusedEpochs.entries()) {
        setCpuKernels({ ...DEFAULT_CPU_KERNELS, fusedOptimizer });
        await trainer.trainEpoch(data.handle, epoch);
      }
      return Object.fromEntries(Object.entries(model.stateTensors()).map(([k, t]) => [k, t.data]));
    } finally {
      trainer.dispose();
      data.dispose();
      model.dispose();
    }
  }

  it('trains resnet18 to the same weights, and hands libtorch\'s step momentum buffers it reads as its own', async () => {
    const unfused = await resnetSteps([false, false]);
    // Fused first, then libtorch's step, which must find the buffers the fused one made.
    for (const fused of [await resnetSteps([true, true]), await resnetSteps([true, false])]) {
      expect(maxAbsDiff(fused, unfused)).toBe(0);
    }
  });
});

// Large fully connected layers through oneDNN's sgemm (native/linear.cc) against at::linear
// (OpenBLAS here): the same log-probabilities and the same weights after SGD steps, to float
// rounding, on 2-d input (an MLP whose first layer is large and whose head is small) and on
// the ViT's 3-d token input. The results must differ in the last bits, or the switch reached
// nothing; and small products (a 10-class head's) keep at::linear's rounding exactly.
describe('oneDNN\'s sgemm for large fully connected layers', () => {
  afterAll(() => setCpuKernels(DEFAULT_CPU_KERNELS));
  const mlp = defineModel('gemm_probe', [L.flatten(), L.linear(784, 512), L.relu(), L.linear(512, 10), L.logSoftmax()]);
  const n = 64;
  const pixels = new Uint8Array(n * 784).map((_, i) => (i * 97 + (i >> 5) * 13) % 256);
  const labels = new Uint8Array(n).map((_, i) => i % 10);

  async function run(spec: ModelSpec, onednnGemm: boolean): Promise<{ logProbs: Float32Array; weights: Record<string, Float32Array> }> {
    setCpuKernels({ ...DEFAULT_CPU_KERNELS, onednnGemm });
    const model = new Model(spec, { seed: 3 });
    const data = Dataset.fromArrays(pixels, labels, [n, 1, 28, 28]);
    const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, batchSize: 32, seed: 1 });
    try {
      const logProbs = await model.logProbsAsync(pixels);
      await trainer.trainEpoch(data.handle, 0);
      return { logProbs, weights: Object.fromEntries(Object.entries(model.stateTensors()).map(([k, t]) => [k, t.data])) };
    } finally {
      trainer.dispose();
      data.dispose();
      model.dispose();
    }
  }

  it('is found in the libtorch that Debian links (libdnnl.so.2)', () => {
    expect(native().oneDnnSgemm).toBe(true);
  });

  it.each([
    ['an MLP on 2-d input', mlp],
    ['the ViT on 3-d token input', zoo.vit({ depth: 2, dropout: 0 })],
  ])('%s: the same log-probabilities and weights after two SGD steps as at::linear, to rounding', async (_, spec) => {
    const fast = await run(spec, true), reference = await run(spec, false);
    const probs = maxAbsDiff({ p: fast.logProbs }, { p: reference.logProbs });
    expect(probs).toBeLessThan(1e-5);
    expect(probs).toBeGreaterThan(0);
    const weights = maxAbsDiff(fast.weights, reference.weights);
    expect(weights).toBeLessThan(1e-5);
    expect(weights).toBeGreaterThan(0);
  });

  it('leaves products under 2^20 multiply-adds to at::linear, bit for bit (a small classifier head)', async () => {
    const smallHead = defineModel('small_head', [L.conv2d(1, 8, 3), L.relu(), L.adaptiveAvgPool2d(2), L.flatten(), L.linear(32, 10), L.logSoftmax()]);
    const fast = await run(smallHead, true), reference = await run(smallHead, false);
    expect(maxAbsDiff({ p: fast.logProbs }, { p: reference.logProbs })).toBe(0);
    expect(maxAbsDiff(fast.weights, reference.weights)).toBe(0);
  });
});
