import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadRawDataset, type RawSplit } from '../../src/data/mnist.js';
import { ImageError, encodePng, preprocessImage, preprocessPixels, sniffFormat, type PreprocessResult } from '../../src/image/index.js';
import { releasedWeightsPath } from '../../src/weights.js';
import { MNIST_DIR } from '../helpers/cli.js';
import { FORMATS, draw, encode, grayImage } from './draw.js';

let test: RawSplit;
const digit = (i: number): Uint8Array => test.images.slice(i * 784, (i + 1) * 784);
const dir = mkdtempSync(join(tmpdir(), 'torchlet-image-'));

beforeAll(async () => {
  test = (await loadRawDataset({ dataDir: MNIST_DIR })).test;
});

function centreOfMass(pixels: Uint8Array): [number, number] {
  let m = 0;
  let x = 0;
  let y = 0;
  pixels.forEach((v, i) => {
    m += v;
    x += v * ((i % 28) + 0.5);
    y += v * (Math.floor(i / 28) + 0.5);
  });
  return [x / m, y / m];
}

function inkBox(pixels: Uint8Array): { width: number; height: number } {
  let x0 = 28;
  let x1 = -1;
  let y0 = 28;
  let y1 = -1;
  pixels.forEach((v, i) => {
    if (v === 0) return;
    x0 = Math.min(x0, i % 28);
    x1 = Math.max(x1, i % 28);
    y0 = Math.min(y0, Math.floor(i / 28));
    y1 = Math.max(y1, Math.floor(i / 28));
  });
  return { width: x1 - x0 + 1, height: y1 - y0 + 1 };
}

async function refused(input: Buffer | string, options?: { maxPixels?: number }): Promise<ImageError> {
  const err: unknown = await preprocessImage(input, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageError);
  return err as ImageError;
}

describe('MNIST-like images', () => {
  it('pass through unchanged, from raw pixels and from a PNG', async () => {
    for (let i = 0; i < 300; i++) {
      const r = preprocessPixels(digit(i), 28, 28, 1);
      expect(r.bbox).toBeNull();
      expect(r.inverted).toBe(false);
      expect(Buffer.from(r.pixels).equals(Buffer.from(digit(i)))).toBe(true);
    }
    for (let i = 0; i < 20; i++) {
      const r = await preprocessImage(encodePng(digit(i), 28, 28));
      expect(r.format).toBe('png');
      expect(r.bbox).toBeNull();
      expect(Buffer.from(r.pixels).equals(Buffer.from(digit(i)))).toBe(true);
    }
  });

  it('returns results of their own: later calls, which reuse the work buffers, do not change them', () => {
    const calls = [
      () => preprocessPixels(digit(0), 28, 28, 1),
      () => preprocessPixels(draw(digit(1), { size: 280, scale: 6, x: 40, y: 60 }).data, 280, 280, 4),
      () => preprocessPixels(draw(digit(2), { size: 120, scale: 3, x: 10, y: 5, alpha: true }).data, 120, 120, 4),
      () => preprocessPixels(digit(3), 28, 28, 1),
    ];
    const kept = calls.map((call) => call());
    const copies = kept.map((r) => ({ pixels: r.pixels.slice(), input: r.input.slice() }));
    for (const call of [...calls].reverse()) call();
    kept.forEach((r, i) => {
      expect(Buffer.from(r.pixels).equals(Buffer.from(copies[i]!.pixels))).toBe(true);
      expect(Buffer.from(r.input.buffer).equals(Buffer.from(copies[i]!.input.buffer))).toBe(true);
      // The same image again gives the same result.
      expect(Buffer.from(calls[i]!().pixels).equals(Buffer.from(r.pixels))).toBe(true);
    });
  });

  it('standardises with the trainer mean and std', () => {
    const r = preprocessPixels(digit(0), 28, 28, 1);
    expect(r.input).toHaveLength(784);
    r.pixels.forEach((v, i) => expect(r.input[i]).toBeCloseTo((v / 255 - 0.1307) / 0.3081, 6));
  });

  it('keeps the values of an RGBA, RGB and gray+alpha copy of the same image', () => {
    const gray = digit(1);
    for (const channels of [2, 3, 4] as const) {
      const data = new Uint8Array(784 * channels);
      gray.forEach((v, i) => {
        data.fill(v, i * channels, i * channels + Math.min(channels, 3));
        if (channels % 2 === 0) data[i * channels + channels - 1] = 255;
      });
      expect(Buffer.from(preprocessPixels(data, 28, 28, channels).pixels).equals(Buffer.from(gray))).toBe(true);
    }
  });
});

describe('normalisation', () => {
  it('detects a light background and inverts it, and leaves a dark one', () => {
    const dark = draw(digit(0), { size: 120, scale: 3, x: 20, y: 10 });
    const a = preprocessPixels(dark.data, 120, 120);
    expect(a.inverted).toBe(true);
    // The same digit as light ink on black gives the same result, not inverted.
    const light = draw(digit(0), { size: 120, scale: 3, x: 20, y: 10, paper: [10, 10, 10], ink: [250, 250, 250] });
    const b = preprocessPixels(light.data, 120, 120);
    expect(b.inverted).toBe(false);
    expect(b.bbox).toEqual(a.bbox);
    const diff = a.pixels.reduce((worst, v, i) => Math.max(worst, Math.abs(v - b.pixels[i]!)), 0);
    expect(diff).toBeLessThanOrEqual(8);
    // Gray paper is still paper: ink at 60 on 150 is dark-on-light.
    const gray = draw(digit(0), { size: 120, scale: 3, x: 20, y: 10, paper: [150, 150, 150], ink: [60, 60, 60] });
    expect(preprocessPixels(gray.data, 120, 120).inverted).toBe(true);
  });

  it('composites alpha on white: black strokes on a transparent canvas', () => {
    const img = draw(digit(2), { size: 200, scale: 5, x: 30, y: 40, ink: [0, 0, 0], alpha: true });
    const r = preprocessPixels(img.data, 200, 200);
    expect(r.inverted).toBe(true);
    expect(r.bbox).not.toBeNull();
    expect(Math.max(r.bbox!.width, r.bbox!.height)).toBeGreaterThan(60);
  });

  it('scales the longest side to 20 px and centres by mass, whatever the size and place', () => {
    const cases = [
      { size: 300, scale: 1, x: 5, y: 260 }, // small, in a corner
      { size: 300, scale: 10, x: 10, y: 15 }, // large, off-centre
      { size: 90, scale: 3, x: 0, y: 6 }, // touching the edge
    ];
    for (const [k, c] of cases.entries()) {
      const r = preprocessPixels(draw(digit(k + 3), c).data, c.size, c.size);
      const box = inkBox(r.pixels);
      expect(Math.max(box.width, box.height)).toBeGreaterThanOrEqual(19);
      expect(Math.max(box.width, box.height)).toBeLessThanOrEqual(21);
      const [cx, cy] = centreOfMass(r.pixels);
      expect(Math.abs(cx - 14)).toBeLessThanOrEqual(1);
      expect(Math.abs(cy - 14)).toBeLessThanOrEqual(1);
    }
  });

  it('keeps the aspect ratio of a thin digit', () => {
    // MNIST test image 2 is a 1: tall and narrow.
    const r = preprocessPixels(draw(digit(2), { size: 200, scale: 6, x: 20, y: 20 }).data, 200, 200);
    const box = inkBox(r.pixels);
    expect(box.height).toBeGreaterThanOrEqual(19);
    expect(box.width).toBeLessThan(12);
    expect(r.bbox!.height / r.bbox!.width).toBeGreaterThan(1.5);
  });

  it('suppresses faint noise: paper grain and specks do not move the box', () => {
    const clean = draw(digit(7), { size: 160, scale: 4, x: 30, y: 20 });
    const noisy = { ...clean, data: clean.data.slice() };
    let seed = 1;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let p = 0; p < 160 * 160; p++) {
      const grain = Math.round((random() - 0.5) * 40);
      for (let c = 0; c < 3; c++) noisy.data[4 * p + c] = Math.max(0, Math.min(255, noisy.data[4 * p + c]! + grain));
    }
    const a = preprocessPixels(clean.data, 160, 160);
    const b = preprocessPixels(noisy.data, 160, 160);
    expect(b.bbox).not.toBeNull();
    for (const k of ['x', 'y', 'width', 'height'] as const) expect(Math.abs(b.bbox![k] - a.bbox![k])).toBeLessThanOrEqual(2);
  });

  it('refuses blank images with a clear error', () => {
    for (const fill of [0, 128, 255]) {
      expect(() => preprocessPixels(grayImage(50, 40, fill), 50, 40, 1)).toThrow(/blank/);
    }
    const faint = grayImage(50, 50, 200);
    faint.fill(190, 500, 600);
    expect(() => preprocessPixels(faint, 50, 50, 1)).toThrow(expect.objectContaining({ code: 'blank' }));
    // Fully transparent: nothing drawn.
    expect(() => preprocessPixels(new Uint8Array(40 * 40 * 4), 40, 40)).toThrow(expect.objectContaining({ code: 'blank' }));
    expect(() => preprocessPixels(new Uint8Array(0), 0, 0)).toThrow(expect.objectContaining({ code: 'empty' }));
    expect(() => preprocessPixels(new Uint8Array(10), 4, 4, 1)).toThrow(RangeError);
  });
});

describe('decoding', () => {
  it('reads every format from a buffer and from a file, sniffed from the bytes', async () => {
    const img = draw(digit(0), { size: 140, scale: 4, x: 20, y: 10 });
    const results: PreprocessResult[] = [];
    for (const format of FORMATS) {
      const bytes = await encode(img, format);
      expect(sniffFormat(bytes)).toBe(format);
      // The wrong extension on purpose: the name does not decide the format.
      const path = join(dir, `digit-${format}.bin`);
      writeFileSync(path, bytes);
      for (const input of [bytes, path]) {
        const r = await preprocessImage(input);
        expect(r.format).toBe(format);
        expect([r.width, r.height, r.inverted]).toEqual([140, 140, true]);
        results.push(r);
      }
    }
    // Every decoder sees the same digit.
    for (const r of results) expect(r.pixels.reduce((d, v, i) => d + Math.abs(v - results[0]!.pixels[i]!), 0) / 784).toBeLessThan(12);
  });

  it('takes the first frame of an animated GIF', async () => {
    const frames = [digit(0), digit(1)].map((d) => draw(d, { size: 84, scale: 3, x: 0, y: 0 }));
    const data = Buffer.concat(frames.map((f) => Buffer.from(f.data)));
    const gif = await sharp(data, { raw: { width: 84, height: 168, channels: 4, pageHeight: 84 } }).gif().toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(2);
    const first = await preprocessImage(await encode(frames[0]!, 'png'));
    const r = await preprocessImage(gif);
    expect(r.height).toBe(84);
    expect(r.pixels.reduce((d, v, i) => d + Math.abs(v - first.pixels[i]!), 0) / 784).toBeLessThan(12);
  });

  it('decodes 16-bit, palette and interlaced PNGs, large and small', async () => {
    const img = draw(digit(4), { size: 200, scale: 6, x: 10, y: 10 });
    const base = sharp(img.data, { raw: { width: 200, height: 200, channels: 4 } });
    const variants = [
      await base.clone().toColourspace('rgb16').png().toBuffer(),
      await base.clone().png({ palette: true }).toBuffer(),
      await base.clone().png({ progressive: true }).toBuffer(),
      await base.clone().resize(100, 100).png({ progressive: true }).toBuffer(), // small: the synchronous path
      await base.clone().resize(100, 100).png({ palette: true }).toBuffer(),
    ];
    const ref = await preprocessImage(await base.clone().png().toBuffer());
    for (const bytes of variants) {
      const r = await preprocessImage(bytes);
      expect(r.inverted).toBe(true);
      expect(r.pixels.reduce((d, v, i) => d + Math.abs(v - ref.pixels[i]!), 0) / 784).toBeLessThan(12);
    }
  });

  it('gives a PNG the same result at any size: ones the synchronous reader would read differently go to sharp', async () => {
    // The same digit at the same place on a small canvas (the synchronous reader's size) and on
    // a large one (sharp): the 28x28 results must be equal.
    const pngs = async (size: number): Promise<Record<string, Buffer>> => {
      const rgb = sharp(draw(digit(5), { size, scale: 3, x: 12, y: 8, paper: [240, 230, 200], ink: [150, 30, 40] }).data, {
        raw: { width: size, height: size, channels: 4 },
      }).flatten({ background: '#ffffff' });
      return {
        '16-bit': await rgb.clone().toColourspace('rgb16').png().toBuffer(),
        'ICC profile': await rgb.clone().withIccProfile('p3').png().toBuffer(),
        // Stored turned a quarter anticlockwise, with the EXIF orientation that turns it back.
        'EXIF orientation': await rgb.clone().rotate(270).withMetadata({ orientation: 6 }).png().toBuffer(),
      };
    };
    const [small, large] = [await pngs(100), await pngs(600)];
    for (const [name, bytes] of Object.entries(small)) {
      const [a, b] = [await preprocessImage(bytes), await preprocessImage(large[name]!)];
      expect(Buffer.from(a.pixels).equals(Buffer.from(b.pixels)), name).toBe(true);
    }
  });

  it('refuses empty input, other formats and text', async () => {
    expect((await refused(Buffer.alloc(0))).code).toBe('empty');
    const bmp = await refused(Buffer.from('BM\x36\x00\x00\x00', 'latin1'));
    expect([bmp.code, bmp.message]).toEqual(['unsupported_format', expect.stringMatching(/not a PNG, JPEG, WebP or GIF.*BMP/)]);
    const svg = await refused(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'));
    expect([svg.code, svg.message]).toEqual(['unsupported_format', expect.stringMatching(/markup/)]);
    expect((await refused(Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8]))).code).toBe('unsupported_format');
    const tiff = await sharp(Buffer.alloc(300), { raw: { width: 10, height: 10, channels: 3 } }).tiff().toBuffer();
    expect((await refused(tiff)).code).toBe('unsupported_format');
  });

  it('refuses truncated and corrupt images of every format', async () => {
    const img = draw(digit(5), { size: 150, scale: 5, x: 5, y: 5 });
    const small = draw(digit(5), { size: 60, scale: 2, x: 2, y: 2 });
    for (const source of [img, small]) {
      for (const format of FORMATS) {
        const bytes = await encode(source, format);
        const truncated = bytes.subarray(0, Math.floor(bytes.length * 0.6));
        const err = await refused(truncated);
        expect(err.code, `${format} truncated`).toBe('corrupt');
        expect(err.message).toMatch(new RegExp(`damaged or truncated ${format.toUpperCase()}`));
      }
      // A flipped byte inside a PNG chunk fails its CRC.
      const png = Buffer.from(await encode(source, 'png'));
      png[png.length - 20]! ^= 0xff;
      expect((await refused(png)).code).toBe('corrupt');
    }
    // A header and nothing else.
    expect((await refused(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).code).toBe('corrupt');
    expect((await refused(Buffer.from('GIF89a', 'latin1'))).code).toBe('corrupt');
  });

  it('refuses a decompression bomb from its header, without decoding it', async () => {
    // A 50,000 x 50,000 PNG whose whole file is a few dozen bytes.
    const bomb = Buffer.from(encodePng(new Uint8Array(1), 1, 1));
    bomb.writeUInt32BE(50_000, 16);
    bomb.writeUInt32BE(50_000, 20);
    const started = performance.now();
    const err = await refused(bomb);
    expect(performance.now() - started).toBeLessThan(1000);
    expect([err.code, err.message]).toEqual(['too_large', expect.stringMatching(/50000x50000 pixels.*limit of 24000000/)]);
    // Other formats go through sharp's own header check.
    const jpeg = await sharp({ create: { width: 600, height: 600, channels: 3, background: '#fff' } }).jpeg().toBuffer();
    expect((await refused(jpeg, { maxPixels: 100_000 })).code).toBe('too_large');
    const png = await sharp({ create: { width: 600, height: 600, channels: 3, background: '#fff' } }).png().toBuffer();
    expect((await refused(png, { maxPixels: 100_000 })).code).toBe('too_large');
    await expect(preprocessImage(png, { maxPixels: 0 })).rejects.toThrow(RangeError);
  });

  it('reports a missing file as the file system error it is', async () => {
    await expect(preprocessImage(join(dir, 'nope.png'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('encodePng', () => {
  it('writes a PNG that sharp decodes back to the same pixels', async () => {
    const pixels = digit(9);
    const { data, info } = await sharp(encodePng(pixels, 28, 28)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([28, 28]);
    expect(Buffer.from(data).equals(Buffer.from(pixels))).toBe(true);
    const wide = Uint8Array.from({ length: 7 * 3 }, (_, i) => i * 12);
    expect(Buffer.from(await sharp(encodePng(wide, 7, 3)).extractChannel(0).raw().toBuffer()).equals(Buffer.from(wide))).toBe(true);
    expect(() => encodePng(pixels, 27, 28)).toThrow(/need 756 bytes/);
  });

  it('stores the pixels uncompressed on request, in a PNG that sharp and pngjs decode back to the same pixels', async () => {
    for (const [w, h] of [[28, 28], [1, 1], [7, 3], [254, 256]] as const) {
      const pixels = Uint8Array.from({ length: w * h }, (_, i) => (i * 37 + (i >> 7)) % 256);
      const stored = encodePng(pixels, w, h, { compress: false });
      // Signature, IHDR, IDAT (zlib header + one stored block + Adler-32), IEND: the pixels are there as they are.
      expect(stored.length).toBe(8 + 25 + 12 + 2 + 5 + (w + 1) * h + 4 + 12);
      expect(Buffer.from(await sharp(stored).extractChannel(0).raw().toBuffer()).equals(Buffer.from(pixels))).toBe(true);
      const png = PNG.sync.read(stored); // checks every chunk's CRC, and zlib the Adler-32
      expect(Buffer.from(png.data.filter((_, i) => i % 4 === 0)).equals(Buffer.from(pixels))).toBe(true);
    }
    expect(() => encodePng(new Uint8Array(256 * 256), 256, 256, { compress: false })).toThrow(/at most 65,535 bytes/);
  });
});

describe('releasedWeightsPath', () => {
  it('finds the shipped weights of every model', () => {
    for (const model of ['light', 'lightest', 'super_light'] as const) {
      const path = releasedWeightsPath(model);
      expect(path).toMatch(new RegExp(`weights[/\\\\]${model}\\.pt$`));
      expect(existsSync(path)).toBe(true);
    }
  });
});
