// The benchmarks' alternating sides (bench/runner.ts turnOrder): every repetition runs every
// side once, and over a cycle (n repetitions, 2n for odd n) every side takes every position,
// and follows every other side, equally often, so neither is tied to one side.
import { describe, expect, it } from 'vitest';
import { turnOrder } from '../bench/runner.js';

describe('turnOrder', () => {
  it.each([1, 2, 3, 4, 6, 7])('with %i sides: a permutation each repetition, positions and neighbours balanced over a cycle', (n) => {
    const cycle = n % 2 === 0 ? n : 2 * n;
    const orders = Array.from({ length: cycle }, (_, r) => turnOrder(n, r));
    const count = (keys: string[]): number[] => [...keys.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>()).values()];
    for (const order of orders) expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    const positions = count(orders.flatMap((o) => o.map((side, pos) => `${side}@${pos}`)));
    expect(positions).toHaveLength(n * n);
    expect(new Set(positions).size).toBe(1);
    const neighbours = count(orders.flatMap((o) => o.slice(1).map((side, k) => `${o[k]}>${side}`)));
    expect(neighbours).toHaveLength(n * (n - 1));
    if (n > 1) expect(new Set(neighbours).size).toBe(1);
    expect(turnOrder(n, cycle)).toEqual(turnOrder(n, 0));
  });
});
