// Validation splits: seeded and stratified, so every class keeps its share in both parts
// and the same seed always holds out the same images.
import type { Dataset } from './dataset.js';

export interface SplitOptions {
  /** Images to hold out: a count (>= 1) or a fraction of the set (0 < size < 1). */
  size: number;
  seed: number;
}

/** mulberry32: a small, well-mixed 32-bit PRNG; enough to shuffle indices reproducibly. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Which rows go to validation: per class, a seeded shuffle, and each class's share of the
 * held-out count by largest remainder (ties to the lower class), so the total is exact.
 * Returns both index lists in ascending order.
 */
export function stratifiedIndices(labels: Uint8Array, options: SplitOptions): { train: Int32Array; val: Int32Array } {
  const n = labels.length;
  const { size, seed } = options;
  if (!Number.isFinite(size) || size <= 0 || (size >= 1 && !Number.isInteger(size))) {
    throw new RangeError(`a validation split must be a count (a positive integer) or a fraction in (0, 1), got ${size}`);
  }
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`the split seed must be a non-negative integer, got ${seed}`);
  const count = size < 1 ? Math.round(size * n) : size;
  if (count < 1 || count >= n) throw new RangeError(`a validation split of ${size} leaves ${count < 1 ? 'no validation' : 'no training'} images (the set has ${n})`);
  const byClass = new Map<number, number[]>();
  labels.forEach((label, i) => {
    const list = byClass.get(label) ?? [];
    list.push(i);
    byClass.set(label, list);
  });
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const rowsOf = (c: number): number[] => byClass.get(c) ?? [];
  const quotas = classes.map((c) => (rowsOf(c).length * count) / n);
  const take = quotas.map(Math.floor);
  const remainder = (i: number): number => (quotas[i] ?? 0) - (take[i] ?? 0);
  let left = count - take.reduce((a, b) => a + b, 0);
  const order = classes.map((_, i) => i).sort((a, b) => remainder(b) - remainder(a) || a - b);
  for (const i of order) {
    if (left === 0) break;
    take[i] = (take[i] ?? 0) + 1;
    left--;
  }
  const random = mulberry32(seed);
  const val: number[] = [];
  const train: number[] = [];
  classes.forEach((c, k) => {
    const rows = Int32Array.from(rowsOf(c));
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const t = rows[i] ?? 0;
      rows[i] = rows[j] ?? 0;
      rows[j] = t;
    }
    val.push(...rows.subarray(0, take[k]));
    train.push(...rows.subarray(take[k]));
  });
  const sorted = (xs: number[]): Int32Array => Int32Array.from(xs).sort();
  return { train: sorted(train), val: sorted(val) };
}

/** Splits `data` into training and validation sets (new native datasets; `data` is left as it is). */
export function stratifiedSplit(data: Dataset, options: SplitOptions): { train: Dataset; val: Dataset } {
  const { train, val } = stratifiedIndices(data.labels(), options);
  return { train: data.take(train), val: data.take(val) };
}
