// torchlet's own CPU paths (channels-last convolutions, the fused batch norm, convolution
// kernels cropped to small inputs, the fused attention) change how a result is computed, never what it is. With
// each switched off in turn, zoo models whose 28x28 input shrinks to 1x1 maps (where the crop
// applies) and that have batch norm + ReLU (where the fusion applies) must still pass the
// PyTorch interop checks that tests/zoo.test.ts runs with all on: equal logits, and one SGD
// step as close to PyTorch's exact (float64) step as its own float32 step is.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dataset, DEFAULT_CPU_KERNELS, defineModel, getCpuKernels, layers as L, Model, native, setCpuKernels, zoo, type CpuKernels } from '../src/index.js';
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
