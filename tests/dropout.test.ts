import { describe, expect, it } from 'vitest';
import { native } from '../src/index.js';

const b = native();

describe('dropout kernel', () => {
  const x = new Float32Array(200_000).map((_, i) => 1 + (i % 7));

  it('drops a fraction p of elements and scales the rest by 1/(1-p)', () => {
    for (const p of [0.05, 0.5]) {
      const { output } = b.hashDropout(x, p, 123);
      let zeros = 0;
      for (let i = 0; i < x.length; i++) {
        if (output[i] === 0) zeros++;
        else expect(output[i]).toBeCloseTo(x[i]! / (1 - p), 5);
      }
      // Binomial standard deviation at n = 200,000 is at most 0.0012; allow five.
      expect(Math.abs(zeros / x.length - p)).toBeLessThan(0.006);
    }
  });

  it('passes gradients through the kept elements only, with the same scale', () => {
    const { output, grad } = b.hashDropout(x, 0.05, 9);
    for (let i = 0; i < x.length; i += 997) expect(grad[i]).toBeCloseTo(output[i] === 0 ? 0 : 1 / 0.95, 6);
  });

  it('is a function of the seed alone, whatever the thread count', () => {
    const threads = b.getNumThreads();
    const a = b.hashDropout(x, 0.05, 42).output;
    b.setNumThreads(1);
    const single = b.hashDropout(x, 0.05, 42).output;
    b.setNumThreads(threads);
    expect(Buffer.from(single.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    expect(Buffer.from(b.hashDropout(x, 0.05, 43).output.buffer).equals(Buffer.from(a.buffer))).toBe(false);
  });

  it('draws masks that do not repeat across neighbouring seeds or positions', () => {
    const ones = new Float32Array(4096).fill(1);
    const m1 = b.hashDropout(ones, 0.5, 1).output;
    const m2 = b.hashDropout(ones, 0.5, 2).output;
    let same = 0;
    for (let i = 0; i < ones.length; i++) if ((m1[i] === 0) === (m2[i] === 0)) same++;
    // Independent masks agree on about half the positions.
    expect(same / ones.length).toBeGreaterThan(0.45);
    expect(same / ones.length).toBeLessThan(0.55);
  });
});
