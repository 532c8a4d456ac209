import { describe, expect, it } from 'vitest';
import { rssRise, rssSlope, soak } from './helpers/soak.js';

describe('memory soak', () => {
  it('keeps RSS flat over 3,000 training steps and 300 evaluations', async () => {
    const { steps, evaluations, rss } = await soak(30, 100, 10);
    expect(steps).toBe(3000);
    expect(evaluations).toBe(300);
    // Bound: the second half may wander by allocator noise, not grow.
    expect(rssRise(rss)).toBeLessThan(24);
    expect(rssSlope(rss)).toBeLessThan(0.5);
  });
});
