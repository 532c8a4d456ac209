import { describe, expect, it } from 'vitest';
import { confusionMatrixPng, trainingCurvesPng } from '../src/plot.js';
import type { EpochRecord } from '../src/train.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Width and height from the IHDR chunk, which PNG requires to come first. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect([...png.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
  expect(png.toString('ascii', 12, 16)).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

const record = (epoch: number, val: boolean): EpochRecord => ({
  epoch,
  trainLoss: 1 / epoch,
  trainAccuracy: 0.9 + epoch / 100,
  testLoss: 0.8 / epoch,
  testAccuracy: 0.92 + epoch / 100,
  ...(val && { valLoss: 0.9 / epoch, valAccuracy: 0.91 + epoch / 100 }),
  stepLoss: 1 / epoch,
  stepAccuracy: 0.9,
  lr: 1e-3,
  seconds: 2,
});

describe('confusionMatrixPng', () => {
  it('renders a roughly square heatmap', async () => {
    const matrix = Array.from({ length: 10 }, (_, t) => Array.from({ length: 10 }, (_, p) => (t === p ? 980 : (t + p) % 3)));
    const png = await confusionMatrixPng(matrix, 'test matrix');
    const { width, height } = pngSize(png);
    expect(width).toBeGreaterThan(400);
    expect(height).toBeGreaterThan(400);
    expect(width / height).toBeGreaterThan(0.8);
    expect(width / height).toBeLessThan(1.25);
    // Text and colour make a real chart far bigger than a blank image.
    expect(png.length).toBeGreaterThan(20_000);
  });
});

describe('trainingCurvesPng', () => {
  it('renders two panels side by side, with or without validation', async () => {
    for (const val of [false, true]) {
      const png = await trainingCurvesPng([1, 2, 3, 4].map((e) => record(e, val)), 'curves');
      const { width, height } = pngSize(png);
      expect(width).toBeGreaterThan(2 * height);
      expect(height).toBeGreaterThan(300);
      expect(png.length).toBeGreaterThan(20_000);
    }
  });

  it('renders a single epoch', async () => {
    expect(pngSize(await trainingCurvesPng([record(1, false)], 'one epoch')).width).toBeGreaterThan(0);
  });
});
