// Seeded, stratified validation splits.
import { describe, expect, it } from 'vitest';
import { Dataset, stratifiedIndices, stratifiedSplit } from '../src/index.js';

// 1,000 labels with uneven classes: class c has 10 + 18c rows, in a scrambled order.
const labels = Uint8Array.from({ length: 1000 }, (_, i) => {
  const k = (i * 7919) % 1000;
  let c = 0;
  let edge = 10;
  while (k >= edge && c < 9) edge += 10 + 18 * ++c;
  return c;
});
const counts = (xs: Uint8Array | number[]): number[] => Array.from({ length: 10 }, (_, c) => Array.from(xs).filter((l) => l === c).length);

describe('stratifiedIndices', () => {
  it('holds out exactly the asked count, each class in proportion, disjoint from training', () => {
    const { train, val } = stratifiedIndices(labels, { size: 0.2, seed: 1 });
    expect(val.length).toBe(200);
    expect(train.length).toBe(800);
    const all = new Set([...train, ...val]);
    expect(all.size).toBe(1000);
    const whole = counts(labels);
    const held = counts(Array.from(val, (i) => labels[i]!));
    // Each class within one image of its exact share.
    held.forEach((h, c) => expect(Math.abs(h - whole[c]! * 0.2)).toBeLessThanOrEqual(1));
  });

  it('is seeded: the same seed holds out the same rows, another seed others', () => {
    const a = stratifiedIndices(labels, { size: 150, seed: 42 });
    const b = stratifiedIndices(labels, { size: 150, seed: 42 });
    const c = stratifiedIndices(labels, { size: 150, seed: 43 });
    expect(Array.from(a.val)).toEqual(Array.from(b.val));
    expect(Array.from(a.val)).not.toEqual(Array.from(c.val));
    expect(a.val.length).toBe(150);
  });

  it('refuses sizes that leave nothing, with the reason', () => {
    expect(() => stratifiedIndices(labels, { size: 1000, seed: 1 })).toThrow(/leaves no training images/);
    expect(() => stratifiedIndices(labels, { size: 0.0001, seed: 1 })).toThrow(/leaves no validation images/);
    expect(() => stratifiedIndices(labels, { size: 2.5, seed: 1 })).toThrow(/a count \(a positive integer\) or a fraction/);
    expect(() => stratifiedIndices(labels, { size: 10, seed: -1 })).toThrow(/seed must be a non-negative integer/);
  });
});

describe('stratifiedSplit on a native dataset', () => {
  it('takes the chosen rows, images with their labels', () => {
    const images = Uint8Array.from({ length: 1000 * 4 }, (_, i) => Math.floor(i / 4) % 256);
    const data = Dataset.fromArrays(images, labels, [1000, 1, 2, 2]);
    const { train, val } = stratifiedSplit(data, { size: 100, seed: 3 });
    const { val: rows } = stratifiedIndices(labels, { size: 100, seed: 3 });
    expect(val.size).toBe(100);
    expect(train.size).toBe(900);
    expect(Array.from(val.labels())).toEqual(Array.from(rows, (i) => labels[i]!));
    expect(() => data.take(Int32Array.of(1000))).toThrow(/index 1000 is outside \[0, 1000\)/);
    for (const d of [data, train, val]) d.dispose();
  });
});
