// The fused CPU kernel for batch norm (+ ReLU + dropout) against libtorch's own unfused
// ops on the same channels-last input, in training (output, all gradients, running
// statistics) and in eval mode. Channel counts cover the specialised widths (4, 8, 12, 16)
// and the generic path (1, 6, 24).
import { describe, expect, it } from 'vitest';
import { native } from '../src/index.js';
import type { BatchNormActResult } from '../src/native.js';

const b = native();

/** Deterministic pseudo-random floats in [lo, hi) (mulberry32). */
function floats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let a = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return lo + ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo));
  });
}

function maxRelDiff(a: Float32Array | undefined, b: Float32Array | undefined): number {
  expect(a).toBeDefined();
  expect(b).toBeDefined();
  if (!a || !b) return Infinity;
  expect(a.length).toBe(b.length);
  const scale = Math.max(1e-3, ...Array.from(b, Math.abs));
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / scale);
  return m;
}

const FIELDS: (keyof BatchNormActResult)[] = ['output', 'gradInput', 'gradWeight', 'gradBias', 'runningMean', 'runningVar'];

function probe(shape: [number, number, number, number], options: { relu?: boolean; dropout?: number; training?: boolean; seed?: number }) {
  const [n, c, h, w] = shape;
  const numel = n * c * h * w;
  // An offset mean per channel, as conv outputs have, so the variance is not trivially centred.
  const x = floats(numel, 1, -1, 1).map((v, i) => 3 * v + (Math.floor(i / (h * w)) % c) * 0.7 - 2);
  return b.batchNormAct({
    x,
    shape,
    weight: floats(c, 2, 0.5, 1.5),
    bias: floats(c, 3, -0.5, 0.5),
    upstream: floats(numel, 4),
    runningMean: floats(c, 5, -1, 1),
    runningVar: floats(c, 6, 0.5, 2),
    ...options,
  });
}

describe('fused batch norm + ReLU + dropout (CPU, channels-last)', () => {
  for (const c of [1, 4, 6, 8, 12, 16, 24]) {
    it(`matches libtorch in training with ${c} channels: output, gradients and running statistics`, () => {
      const { fused, reference } = probe([16, c, 9, 7], { relu: true, dropout: 0.2, seed: 7 + c });
      for (const field of FIELDS) expect(maxRelDiff(fused[field], reference[field]), field).toBeLessThan(1e-5);
      // The dropout really dropped: about 20% of the post-ReLU positives are zero.
      const zeros = fused.output.filter((v) => v === 0).length / fused.output.length;
      expect(zeros).toBeGreaterThan(0.2);
    });
  }

  it('matches libtorch without ReLU and without dropout', () => {
    for (const relu of [false, true]) {
      const { fused, reference } = probe([8, 12, 10, 10], { relu, dropout: 0 });
      for (const field of FIELDS) expect(maxRelDiff(fused[field], reference[field]), `${field} relu=${relu}`).toBeLessThan(1e-5);
      expect(fused.output.some((v) => v < 0)).toBe(!relu);
    }
  });

  it('matches libtorch in eval mode: running statistics, no dropout', () => {
    for (const c of [4, 6, 16]) {
      const { fused, reference } = probe([4, c, 6, 6], { relu: true, dropout: 0.5, training: false });
      expect(maxRelDiff(fused.output, reference.output), `c=${c}`).toBeLessThan(1e-5);
      expect(fused.gradInput).toBeUndefined();
      expect(Array.from(fused.runningMean)).toEqual(Array.from(reference.runningMean));
    }
  });

  it('refuses a single value per channel in training, as nn.BatchNorm2d does', () => {
    expect(() => probe([1, 4, 1, 1], { relu: true })).toThrow(/more than one value per channel/);
  });
});
