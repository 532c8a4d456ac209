// torchlet's own CPU paths (channels-last convolutions, the fused batch norm, convolution
// kernels cropped to small inputs) change how a result is computed, never what it is. With
// each switched off in turn, zoo models whose 28x28 input shrinks to 1x1 maps (where the crop
// applies) and that have batch norm + ReLU (where the fusion applies) must still pass the
// PyTorch interop checks that tests/zoo.test.ts runs with all on: equal logits, and one SGD
// step as close to PyTorch's exact (float64) step as its own float32 step is.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCpuKernels, setCpuKernels, type CpuKernels } from '../src/index.js';
import { zooInteropSuite } from './helpers/zoo-interop.js';

const ALL_ON: CpuKernels = { channelsLast: true, fusedBatchNorm: true, cropConvs: true };

describe('CPU kernel switches', () => {
  afterAll(() => setCpuKernels(ALL_ON));

  it('start all on, set only what is given, and refuse unknown switches and non-booleans without changing any', () => {
    expect(getCpuKernels()).toEqual(ALL_ON);
    expect(setCpuKernels({ cropConvs: false })).toEqual({ ...ALL_ON, cropConvs: false });
    expect(() => setCpuKernels({ cropConvs: true, fast: true } as Partial<CpuKernels>)).toThrow(/unknown switch 'fast'/);
    expect(() => setCpuKernels({ channelsLast: false, fusedBatchNorm: 'no' } as unknown as Partial<CpuKernels>)).toThrow(/'fusedBatchNorm' must be a boolean, got string/);
    expect(getCpuKernels()).toEqual({ ...ALL_ON, cropConvs: false });
  });
});

const MODELS = ['resnet18', 'mobilenet_v3_small'] as const;
describe.each([
  ['no kernel crop', { cropConvs: false }],
  ['no fused batch norm', { fusedBatchNorm: false }],
  ['no channels-last', { channelsLast: false }],
] as const)('with %s', (label, off) => {
  beforeAll(() => setCpuKernels({ ...ALL_ON, ...off }));
  afterAll(() => setCpuKernels(ALL_ON));
  zooInteropSuite([...MODELS], new Set(MODELS), undefined, `zoo models (${label})`);
});
