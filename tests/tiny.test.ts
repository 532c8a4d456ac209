// The tiny family (issue 15): exact parameter counts under each budget, the PyTorch twins
// (python/tiny_models.py, through python/zoo.py) against torchlet's models with weights
// both ways and equal logits on real MNIST images (helpers/zoo-interop.ts), and
// `torchlet train`/`evaluate` taking them by name; their depthwise-separable layout. The
// same for the first tiny8k factorized into 3x1 + 1x3 convolutions (non-square kernels),
// which also trains through train().
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMnist, Model, train } from '../src/index.js';
import { countParams, layers as L, type ModelSpec } from '../src/spec.js';
import { tinyFactorized, tinyModels, tinyNet } from '../src/models.js';
import { forwardMacs } from '../bench/train.js';
import { cli, expectNoCrash } from './helpers/cli.js';
import { zooInteropSuite, type Registry } from './helpers/zoo-interop.js';

const specs = { ...tinyModels, ...tinyFactorized };
type TinyName = keyof typeof specs;
const names = Object.keys(specs) as TinyName[];
const registry: Registry = Object.fromEntries(names.map((n) => [n, () => specs[n]]));

zooInteropSuite(names, new Set(names), registry, 'tiny models');

describe('tiny models', () => {
  it.each([
    ['tiny8k', 7_950, 8_000],
    ['tiny5k', 4_946, 5_000],
    ['tiny2k', 1_978, 2_000],
  ] as const)('%s has exactly %i parameters, under %i', (name, params, budget) => {
    expect(countParams(tinyModels[name])).toBe(params);
    expect(params).toBeLessThan(budget);
  });

  it.each(Object.keys(tinyModels) as (keyof typeof tinyModels)[])('%s: a plain first conv, then every 3x3 depthwise (groups = channels) and followed by a 1x1', (name) => {
    const convs = tinyModels[name].layers.flatMap((l) => (l.type === 'conv2d' ? [l] : []));
    expect(convs[0]).toMatchObject({ in: 1, kernel: 3, padding: 1 });
    expect(convs[0]?.groups).toBeUndefined();
    const rest = convs.slice(1, -1);
    expect(rest.length % 2).toBe(0);
    for (let i = 0; i < rest.length; i += 2) {
      const [dw, pw] = [rest[i]!, rest[i + 1]!];
      expect(dw).toMatchObject({ kernel: 3, groups: dw.in, out: dw.in, bias: false });
      expect(pw).toMatchObject({ kernel: 1, in: dw.in, bias: false });
      expect(pw.groups).toBeUndefined();
    }
    expect(convs.at(-1)).toMatchObject({ kernel: 1, out: 10 });
  });

  it('linearDepthwise drops only the ReLU after each depthwise batch norm: the same parameters', () => {
    const widths: [number, number, ...number[]] = [12, 32, 36, 36, 36, 36];
    const [relu, linear] = [tinyNet('a', widths, null, { separable: true }), tinyNet('b', widths, null, { separable: true, linearDepthwise: true })];
    expect(countParams(linear)).toBe(countParams(relu));
    const after = (spec: ModelSpec): string[] => spec.layers.flatMap((l, i) => (l.type === 'conv2d' && (l.groups ?? 1) > 1 ? [spec.layers[i + 2]?.type ?? 'none'] : []));
    expect(after(relu)).toEqual(Array(5).fill('relu'));
    expect(after(linear)).toEqual(Array(5).fill('conv2d'));
    expect(linear.layers.filter((l) => l.type === 'relu')).toHaveLength(relu.layers.filter((l) => l.type === 'relu').length - 5);
  });

  it('residual pads the stages after the pool and adds identity shortcuts where the width stays: the same parameters, 13x13 maps to the end', () => {
    const widths: [number, number, ...number[]] = [12, 32, 36, 36, 36, 36];
    const [plain, res] = [tinyNet('a', widths, null, { separable: true }), tinyNet('b', widths, null, { separable: true, residual: true })];
    expect(countParams(res)).toBe(countParams(plain));
    const blocks = res.layers.flatMap((l) => (l.type === 'residual' ? [l] : []));
    // 32 -> 36 changes the width, so three of the four stages after the pool carry a shortcut.
    expect(blocks).toHaveLength(3);
    for (const b of blocks) {
      expect(b.shortcut).toBeUndefined();
      expect(b.layers.map((l) => l.type)).toEqual(['conv2d', 'batchnorm2d', 'relu', 'conv2d', 'batchnorm2d']);
      expect(b.layers[0]).toMatchObject({ kernel: 3, padding: 1, groups: 36 });
    }
    // Each block's sum is followed by its ReLU.
    expect(res.layers.filter((_, i) => res.layers[i - 1]?.type === 'residual').map((l) => l.type)).toEqual(['relu', 'relu', 'relu']);
    // An identity shortcut costs no multiply-adds: the same count as its layers laid out flat.
    const flat: ModelSpec = { ...res, layers: res.layers.flatMap((l) => (l.type === 'residual' ? l.layers : [l])) };
    expect(forwardMacs(res)).toBe(forwardMacs(flat));
    // A block whose multiply-adds it does not model is an error, not a silent undercount.
    const squeezeExcite: ModelSpec = { ...res, layers: [L.scale(L.globalAvgPool(), L.conv2d(1, 1, 1), L.sigmoid()), ...res.layers] };
    expect(() => forwardMacs(squeezeExcite)).toThrow('forwardMacs: scale at spec.layers[0] is not supported');
    // The four separable stages after the pool run at 13x13 instead of 11, 9, 7 and 5.
    const [first, same] = [32 * 9 + 32 * 36, 36 * 9 + 36 * 36];
    expect(forwardMacs(res) - forwardMacs(plain)).toBe(first * (13 ** 2 - 11 ** 2) + same * (3 * 13 ** 2 - 9 ** 2 - 7 ** 2 - 5 ** 2));
    expect(() => tinyNet('c', widths, null, { residual: true })).toThrow("c: 'residual' needs 'separable'");
  });

  it('silu puts SiLU in place of every ReLU: the same parameters', () => {
    const widths: [number, number, ...number[]] = [8, 20, 28, 28, 28, 28];
    const [relu, silu] = [tinyNet('a', widths, null, { separable: true }), tinyNet('b', widths, null, { separable: true, silu: true })];
    expect(countParams(silu)).toBe(countParams(relu));
    expect(silu.layers.map((l) => (l.type === 'silu' ? 'relu' : l.type))).toEqual(relu.layers.map((l) => l.type));
    expect(silu.layers.some((l) => l.type === 'relu')).toBe(false);
  });

  it('tiny8k_factorized: every 3x3 is a 3x1 then a 1x3, for 6,326 parameters', () => {
    const spec = tinyFactorized.tiny8k_factorized;
    expect(countParams(spec)).toBe(6_326);
    const convs = spec.layers.flatMap((l) => (l.type === 'conv2d' ? [[l.kernel, l.padding ?? 0]] : []));
    expect(convs.slice(0, 4)).toEqual([
      [[3, 1], [1, 0]],
      [[1, 3], [0, 1]],
      [[3, 1], [0, 0]],
      [[1, 3], [0, 0]],
    ]);
  });

  it('tiny8k_factorized trains through train(): the loss goes down on 2,048 MNIST training images', async () => {
    const model = new Model(tinyFactorized.tiny8k_factorized, { seed: 5 });
    const data = await loadMnist({ trainLimit: 2048, testLimit: 512 });
    try {
      const { history } = await train(model, data, { epochs: 3, maxLr: 0.05, seed: 5 });
      // The running loss the steps saw (train mode), and the loss on the training images after each epoch (eval mode).
      const stepLosses = history.map((r) => r.stepLoss);
      const losses = history.map((r) => r.trainLoss);
      const shown = (l: number[]): string => l.map((x) => x.toFixed(3)).join(' -> ');
      console.log(`tiny8k_factorized, 3 epochs of 2,048 images: step loss ${shown(stepLosses)}, train loss ${shown(losses)}, test accuracy ${(history.at(-1)!.testAccuracy * 100).toFixed(1)}% on 512`);
      expect(stepLosses[2]).toBeLessThan(stepLosses[0]! * 0.8);
      expect(losses[2]).toBeLessThan(losses[0]! * 0.8);
      expect(history.at(-1)!.testAccuracy).toBeGreaterThan(0.5);
    } finally {
      data.train.dispose();
      data.test.dispose();
      model.dispose();
    }
  });

  const tmp = mkdtempSync(join(tmpdir(), 'torchlet-tiny-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('torchlet train --model tiny2k trains and saves weights that torchlet evaluate --model tiny2k scores', async () => {
    const out = join(tmp, 'tiny2k.pt');
    const trained = await cli(['train', '--model', 'tiny2k', '--epochs', '1', '--train-limit', '2000', '--no-track', '--out', out]);
    expectNoCrash(trained);
    expect(trained.code, trained.stderr).toBe(0);
    expect(trained.stdout).toMatch(/^epoch {2}1 \| /m);
    const scored = await cli(['evaluate', '--model', 'tiny2k', '--weights', out, '--out-dir', tmp]);
    expectNoCrash(scored);
    expect(scored.code, scored.stderr).toBe(0);
    expect(scored.stdout).toMatch(/accuracy/i);
  });
});
