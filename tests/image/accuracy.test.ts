// Accuracy on digits as people's images show them: MNIST test digits redrawn dark on
// light paper at 280x280, scaled, shifted, in colour, some on a transparent background,
// then encoded in each format. Preprocessing has to give them back to the model as MNIST.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRawDataset, type RawSplit } from '../../src/data/mnist.js';
import { preprocessImage } from '../../src/image/index.js';
import { Model } from '../../src/model.js';
import { superLight } from '../../src/models.js';
import { releasedWeightsPath } from '../../src/weights.js';
import { MNIST_DIR } from '../helpers/cli.js';
import { FORMATS, draw, encode, type Format } from './draw.js';

const COUNT = 1000;
const SIZE = 280;
/** Measured: PNG 99.2%, JPEG 99.1%, WebP 99.2%, GIF 99.0% (SuperLight on the 28x28 originals: 99.6%). */
const LOWER_BOUND: Record<Format, number> = { png: 0.99, jpeg: 0.99, webp: 0.99, gif: 0.985 };
const PAPERS: [number, number, number][] = [[255, 255, 255], [245, 240, 225], [200, 200, 195], [235, 238, 245]];
const INKS: [number, number, number][] = [[0, 0, 0], [20, 30, 110], [60, 60, 60], [90, 20, 20]];

let test: RawSplit;
let model: Model;

beforeAll(async () => {
  test = (await loadRawDataset({ dataDir: MNIST_DIR })).test;
  model = Model.fromFile(superLight, releasedWeightsPath('super_light'));
});
afterAll(() => model.dispose());

/** A deterministic variety of sizes, places, colours and alpha for image i. */
function variant(i: number, format: Format) {
  const scale = 3 + (i % 7); // the digit's 28 px frame becomes 84..252 px
  const room = SIZE - 28 * scale;
  return {
    size: SIZE,
    scale,
    x: (i * 37) % (room + 1),
    y: (i * 53) % (room + 1),
    paper: PAPERS[i % PAPERS.length]!,
    ink: INKS[(i >> 2) % INKS.length]!,
    alpha: format !== 'jpeg' && i % 3 === 0,
  };
}

describe('accuracy after preprocessing', () => {
  const measured: Partial<Record<Format, number>> = {};
  afterAll(() => {
    const line = Object.entries(measured).map(([f, a]) => `${f} ${(100 * a).toFixed(1)}%`).join(', ');
    console.log(`SuperLight on ${COUNT} redrawn MNIST test digits per format: ${line}`);
  });

  it('the originals are classified as expected', () => {
    const predicted = model.logProbs(test.images.subarray(0, COUNT * 784));
    let right = 0;
    for (let i = 0; i < COUNT; i++) {
      const row = predicted.subarray(i * 10, i * 10 + 10);
      if (row.indexOf(Math.max(...row)) === test.labels[i]) right++;
    }
    expect(right / COUNT).toBeGreaterThanOrEqual(0.995);
  });

  for (const format of FORMATS) {
    it(`${format}: at least ${100 * LOWER_BOUND[format]}%`, async () => {
      const batch = new Uint8Array(COUNT * 784);
      const inverted: boolean[] = [];
      // Encoding and decoding run on sharp's thread pool: a few in flight at once keep both cores busy.
      const chunk = 8;
      for (let start = 0; start < COUNT; start += chunk) {
        const ids = Array.from({ length: Math.min(chunk, COUNT - start) }, (_, k) => start + k);
        const results = await Promise.all(
          ids.map(async (i) => preprocessImage(await encode(draw(test.images.subarray(i * 784, (i + 1) * 784), variant(i, format)), format))),
        );
        results.forEach((r, k) => {
          batch.set(r.pixels, (start + k) * 784);
          inverted.push(r.inverted);
        });
      }
      expect(inverted.every(Boolean)).toBe(true);
      const logProbs = model.logProbs(batch);
      let right = 0;
      for (let i = 0; i < COUNT; i++) {
        const row = logProbs.subarray(i * 10, i * 10 + 10);
        if (row.indexOf(Math.max(...row)) === test.labels[i]) right++;
      }
      measured[format] = right / COUNT;
      expect(right / COUNT).toBeGreaterThanOrEqual(LOWER_BOUND[format]);
    });
  }
});
