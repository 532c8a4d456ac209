// The long soak: 20,000 training steps and 2,000 evaluations in one process, sampling
// resident memory after each of 40 rounds. Native memory that leaked per step or per
// call would show as steady growth; allocator and GC noise only as bounded wobble.
import { describe, expect, it } from 'vitest';
import { rssRise, rssSlope, soak } from '../helpers/soak.js';

const ROUNDS = 40;
const STEPS_PER_ROUND = 500;
const EVALS_PER_ROUND = 50;
/** The largest rise over the second half (rounds 21-40), in MiB (a fall is pages given back, not a leak). */
const WOBBLE_MIB = 32;
/**
 * Least-squares growth over the second half, in MiB per round (500 steps + 50 evaluations).
 * Leaking even one 1 KiB tensor per step would grow RSS by 0.5 MiB a round; allocator page
 * noise alone was measured at up to 0.12 MiB a round (RSS moving 237 -> 239 MiB over 20 rounds).
 */
const SLOPE_MIB = 0.5;

describe('long memory soak', () => {
  it(`keeps RSS flat over ${ROUNDS * STEPS_PER_ROUND} training steps and ${ROUNDS * EVALS_PER_ROUND} evaluations`, async () => {
    const started = performance.now();
    const { steps, evaluations, rss } = await soak(ROUNDS, STEPS_PER_ROUND, EVALS_PER_ROUND);
    const seconds = (performance.now() - started) / 1000;
    const wobble = rssRise(rss);
    const slope = rssSlope(rss);
    console.log(
      `memory soak: ${steps} steps + ${evaluations} evaluations in ${seconds.toFixed(0)}s; ` +
        `RSS after round 1 ${rss[0]!.toFixed(1)} MiB, peak ${Math.max(...rss).toFixed(1)} MiB, last ${rss.at(-1)!.toFixed(1)} MiB; ` +
        `second half: largest rise ${wobble.toFixed(1)} MiB (bound ${WOBBLE_MIB}), slope ${slope.toFixed(3)} MiB/round (bound ${SLOPE_MIB})\n` +
        `  RSS per round (MiB): ${rss.map((r) => r.toFixed(0)).join(' ')}`,
    );
    expect(steps).toBe(ROUNDS * STEPS_PER_ROUND);
    expect(evaluations).toBe(ROUNDS * EVALS_PER_ROUND);
    expect(wobble).toBeLessThan(WOBBLE_MIB);
    expect(slope).toBeLessThan(SLOPE_MIB);
  });
});
