// Shared by the quick soak in `npm test` and the long one in `npm run test:faults`:
// trains and evaluates repeatedly and samples resident memory as it goes.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Dataset, defineModel, layers as L, Model, native } from '../../src/index.js';

// RSS is sampled after a full collection, so that V8's uncollected garbage (a sawtooth of
// tens of MiB in a busy test worker) is not read as native growth. --expose-gc can be set at
// run time; a fresh context then sees the gc function.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

// Small on purpose: the soak is about native allocations per call, not arithmetic.
const soakModel = defineModel('soak', [L.conv2d(1, 4, 5, { stride: 3 }), L.batchNorm2d(4), L.relu(), L.dropout(0.1), L.flatten(), L.linear(256, 10), L.logSoftmax()]);

export interface SoakResult {
  steps: number;
  evaluations: number;
  /** RSS in MiB after each round. */
  rss: number[];
}

export async function soak(rounds: number, stepsPerRound: number, evalsPerRound: number): Promise<SoakResult> {
  const batch = 16;
  const n = batch * stepsPerRound;
  const images = new Uint8Array(n * 784).map((_, i) => (i * 31) % 251);
  const labels = new Uint8Array(n).map((_, i) => i % 10);
  const data = Dataset.fromArrays(images, labels, [n, 1, 28, 28]);
  const evalData = data.slice(0, Math.min(n, 64));
  const model = new Model(soakModel, { seed: 1 });
  const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'adamw', lr: 1e-3 }, batchSize: batch, augment: { degrees: 5, distortion: 0.2, perspectiveP: 0.5 } });
  const rss: number[] = [];
  let steps = 0;
  let evaluations = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      steps += (await trainer.trainEpoch(data.handle, round)).steps;
      for (let e = 0; e < evalsPerRound; e++) {
        await model.evaluate(evalData);
        evaluations++;
      }
      // Short-lived natives, disposed deterministically, must not accumulate either.
      const scratch = Dataset.fromArrays(images.subarray(0, 784 * 4), labels.subarray(0, 4), [4, 1, 28, 28]);
      scratch.dispose();
      collectGarbage();
      rss.push(process.memoryUsage().rss / 2 ** 20);
    }
  } finally {
    trainer.dispose();
    model.dispose();
    evalData.dispose();
    data.dispose();
  }
  return { steps, evaluations, rss };
}

/**
 * The largest rise of RSS (MiB) over the second half: the most any later round stands above
 * any earlier one. Growth is what a leak looks like; a fall is the allocator giving pages
 * back (measured: single steps of 17 and 27 MiB down, mid-soak, with nothing freed by us).
 */
export function rssRise(rss: number[]): number {
  let low = Infinity;
  let rise = 0;
  for (const v of rss.slice(Math.floor(rss.length / 2))) {
    low = Math.min(low, v);
    rise = Math.max(rise, v - low);
  }
  return rise;
}

/**
 * How far the second half's highest RSS stands above the first half's (MiB). A leak keeps
 * setting new highs; the allocator giving pages back and taking them again does not (a dip
 * of 12 MiB and its recovery read as a slope of 1.26 MiB per 1,000 requests and failed CI).
 */
export function rssNewHigh(rss: number[]): number {
  const half = Math.floor(rss.length / 2);
  return Math.max(...rss.slice(half)) - Math.max(...rss.slice(0, half));
}

/** Least-squares slope of RSS (MiB) per round over the second half, after allocators have warmed up. */
export function rssSlope(rss: number[]): number {
  const ys = rss.slice(Math.floor(rss.length / 2));
  const xs = ys.map((_, i) => i);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const num = xs.reduce((a, x, i) => a + (x - mx) * ((ys[i] ?? 0) - my), 0);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}
