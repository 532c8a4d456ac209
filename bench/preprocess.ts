// `npm run bench:preprocess`: per-image cost of turning an image into the model's input,
// for a 28x28 MNIST PNG and a 280x280 dark-on-light PNG, split into decoding and the pure
// pipeline. Medians of back-to-back calls after a warm-up, in one process.
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadRawDataset } from '../src/data/mnist.js';
import { decodePng } from '../src/image/png-decode.js';
import { encodePng, preprocessImage, preprocessPixels, type Channels } from '../src/image/index.js';
import { draw } from '../tests/image/draw.js';
import { darkOnLightPng } from '../tests/serve/helpers.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '2000' } } });
const N = Number(values.n);
const test = (await loadRawDataset({})).test;
const digits = Array.from({ length: 100 }, (_, i) => test.images.slice(i * 784, (i + 1) * 784));

/** The i-th input, cycling through the list. */
const pick = <T>(list: T[], i: number): T => list[i % list.length] as T;

async function median(what: string, f: (i: number) => unknown, n = N): Promise<number> {
  for (let i = 0; i < Math.min(200, n); i++) await f(i);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await f(i);
    times.push(Number(process.hrtime.bigint() - start) / 1e3);
  }
  times.sort((a, b) => a - b);
  const p50 = times[times.length >> 1] ?? NaN;
  console.log(`${what.padEnd(44)} median ${p50.toFixed(1).padStart(7)} us   p90 ${(times[Math.floor(times.length * 0.9)] ?? NaN).toFixed(1).padStart(7)} us`);
  return p50;
}

const small = digits.map((d) => encodePng(d, 28, 28));
const large = await Promise.all(
  digits.slice(0, 20).map((d, i) =>
    sharp(draw(d, { size: 280, scale: 6 + (i % 3), x: 10 + i, y: 20, alpha: i % 2 === 0 }).data, { raw: { width: 280, height: 280, channels: 4 } })
      .png()
      .toBuffer(),
  ),
);
const largeRaw = await Promise.all(large.map((b) => sharp(b).raw().toBuffer({ resolveWithObject: true })));

console.log(`preprocessing, ${N} calls each (${new Date().toISOString()}, load average ${(await import('node:os')).loadavg()[0]?.toFixed(1)})`);
await median('28x28 PNG: preprocessImage (decode + pipeline)', (i) => preprocessImage(pick(small, i)));
await median('28x28: preprocessPixels only', (i) => preprocessPixels(pick(digits, i), 28, 28, 1));
await median('280x280 PNG: preprocessImage (decode + pipeline)', (i) => preprocessImage(pick(large, i)));
await median('280x280 PNG: sharp decode only', (i) => sharp(pick(large, i)).raw().toBuffer());
await median('280x280: preprocessPixels only', (i) => {
  const { data, info } = pick(largeRaw, i);
  return preprocessPixels(data, info.width, info.height, info.channels as Channels);
});
await median('encodePng 28x28 (what the model saw)', (i) => encodePng(pick(digits, i), 28, 28));

// Where the synchronous PNG reader stops beating sharp (decode.ts's SYNC_PNG_PIXELS and
// SYNC_FILTERED_BYTES): wall time here, CPU time beside it, for PNGs stored unfiltered
// (sharp's default, as the serving benchmark's upload is) and with every row filtered
// (libpng's adaptive choice, as browsers and image editors write them; the reader's slowest
// case).
for (const size of [160, 256, 384, 512, 768]) {
  for (const adaptiveFiltering of [false, true]) {
    const pngs = await Promise.all(
      digits.slice(0, 10).map(async (d, i) => sharp(await darkOnLightPng({ index: i, label: test.labels[i] ?? 0, pixels: d }, size)).png({ adaptiveFiltering }).toBuffer()),
    );
    for (const [name, decode] of [
      ['sharp', (png: Buffer) => sharp(png).raw().toBuffer()],
      ['decodePng', (png: Buffer) => decodePng(png)],
    ] as const) {
      const cpu = process.cpuUsage();
      const n = Math.min(N, 300);
      await median(`${size}x${size} PNG${adaptiveFiltering ? ', filtered' : ''}: ${name}`, (i) => decode(pick(pngs, i)), n);
      const used = process.cpuUsage(cpu);
      console.log(`${''.padEnd(44)} cpu    ${((used.user + used.system) / (n + Math.min(200, n))).toFixed(1).padStart(7)} us`);
    }
  }
}
