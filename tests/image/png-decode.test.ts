// The synchronous PNG reader against two independent decoders: sharp (libvips) for every
// colour type it covers, and pngjs's encoder for each of the five row filters, one at a time.
import { crc32, deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import sharp, { type Sharp } from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadRawDataset, type RawSplit } from '../../src/data/mnist.js';
import { native } from '../../src/native.js';
import { decodePng, PngDamage, type DecodedPng } from '../../src/image/png-decode.js';
import { Scratch } from '../../src/image/scratch.js';
import { chunk } from '../../src/image/png.js';
import { MNIST_DIR } from '../helpers/cli.js';
import { draw } from './draw.js';

let test: RawSplit;
let rgba: Buffer;
const SIZE = 90;

beforeAll(async () => {
  test = (await loadRawDataset({ dataDir: MNIST_DIR })).test;
  // Half-transparent ink on transparent paper: every channel carries information.
  rgba = Buffer.from(draw(test.images.slice(0, 784), { size: SIZE, scale: 3, x: 4, y: 2, ink: [200, 40, 90], alpha: true }).data);
});

async function sharpPixels(png: Buffer): Promise<{ data: Buffer; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, channels: info.channels };
}

/** Gray as sharp's raw output gives it (R = G = B), to compare byte for byte. */
function asSrgb({ data, channels }: DecodedPng): Uint8Array {
  if (channels > 2) return data;
  const out = new Uint8Array((data.length / channels) * (channels + 2));
  for (let i = 0, j = 0; i < data.length; i += channels, j += channels + 2) {
    out.fill(data[i]!, j, j + 3);
    if (channels === 2) out[j + 3] = data[i + 1]!;
  }
  return out;
}

function decoded(png: Buffer): DecodedPng {
  const out = decodePng(png);
  expect(out).not.toBeNull();
  return out!;
}

/** A copy with the first `type` chunk's body rewritten by `edit`, and its CRC made right again unless `fixCrc` is false. */
function editChunk(png: Buffer, type: string, edit: (body: Buffer) => void, fixCrc = true): Buffer {
  const out = Buffer.from(png);
  for (let p = 8; p < out.length; p += 12 + out.readUInt32BE(p)) {
    if (out.toString('latin1', p + 4, p + 8) !== type) continue;
    const length = out.readUInt32BE(p);
    edit(out.subarray(p + 8, p + 8 + length));
    if (fixCrc) out.writeUInt32BE(crc32(out.subarray(p + 4, p + 8 + length)), p + 8 + length);
    return out;
  }
  throw new Error(`no ${type} chunk`);
}

describe('decodePng', () => {
  it('reads gray, gray + alpha, RGB, RGBA and palette PNGs as sharp does, filtered or not', async () => {
    const source = sharp(rgba, { raw: { width: SIZE, height: SIZE, channels: 4 } });
    const variants: Record<string, Sharp> = {
      gray: source.clone().flatten({ background: '#fff' }).toColourspace('b-w'),
      'gray + alpha': source.clone().toColourspace('b-w'),
      RGB: source.clone().flatten({ background: '#fff' }),
      RGBA: source.clone(),
    };
    const expected = { gray: 1, 'gray + alpha': 2, RGB: 3, RGBA: 4 };
    for (const [name, image] of Object.entries(variants)) {
      for (const adaptiveFiltering of [false, true]) {
        const png = await image.clone().png({ adaptiveFiltering }).toBuffer();
        const ours = decoded(png);
        const theirs = await sharpPixels(png);
        expect([ours.width, ours.height, ours.channels], name).toEqual([SIZE, SIZE, expected[name as keyof typeof expected]]);
        expect(Buffer.from(asSrgb(ours)).equals(theirs.data), `${name}, adaptive filtering ${adaptiveFiltering}`).toBe(true);
      }
    }
    // Palettes: sharp quantises; with alpha it writes a tRNS chunk, and the entries get alpha.
    for (const image of [source.clone().flatten({ background: '#fff' }), source.clone()]) {
      const png = await image.png({ palette: true, colours: 64 }).toBuffer();
      expect(png[25], 'colour type 3').toBe(3);
      const ours = decoded(png);
      const theirs = await sharpPixels(png);
      expect(ours.channels).toBe(theirs.channels);
      expect(Buffer.from(ours.data).equals(theirs.data)).toBe(true);
    }
  });

  it('undoes each of the five row filters', () => {
    const png = new PNG({ width: SIZE, height: SIZE });
    rgba.copy(png.data);
    for (const filterType of [0, 1, 2, 3, 4]) {
      const bytes = PNG.sync.write(png, { filterType });
      const ours = decoded(bytes);
      expect(ours.channels).toBe(4);
      expect(Buffer.from(ours.data).equals(rgba), `filter ${filterType}`).toBe(true);
    }
  });

  it('leaves to sharp what it does not cover: 16-bit, interlaced, colour profiles, EXIF, a colour key', async () => {
    const rgb = sharp(rgba, { raw: { width: SIZE, height: SIZE, channels: 4 } }).flatten({ background: '#fff' });
    expect(decodePng(await rgb.clone().toColourspace('rgb16').png().toBuffer())).toBeNull();
    expect(decodePng(await rgb.clone().png({ progressive: true }).toBuffer())).toBeNull();
    expect(decodePng(await rgb.clone().withIccProfile('p3').png().toBuffer())).toBeNull();
    expect(decodePng(await rgb.clone().withMetadata({ orientation: 6 }).png().toBuffer())).toBeNull();
    // A tRNS colour key (gray level 255 is transparent) spliced in after IHDR.
    const gray = await rgb.clone().toColourspace('b-w').png().toBuffer();
    const trns = chunk('tRNS', Buffer.from([0, 255]));
    const keyed = Buffer.concat([gray.subarray(0, 33), trns, gray.subarray(33)]);
    expect(decodePng(keyed)).toBeNull();
    // ...an image over 64 MiB (a header that says 5000x5000 RGB; the data is never inflated)...
    const big = editChunk(await rgb.clone().png().toBuffer(), 'IHDR', (b) => void (b.writeUInt32BE(5000, 0), b.writeUInt32BE(5000, 4)));
    expect(decodePng(big)).toBeNull();
    // ...and reading only as far as the rows' filters, when too many bytes are filtered.
    const filtered = await rgb.clone().png({ adaptiveFiltering: true }).toBuffer();
    expect(decodePng(filtered, { maxFilteredBytes: 10 })).toBeNull();
    expect(decodePng(filtered, { maxFilteredBytes: SIZE * SIZE * 3 })).not.toBeNull();
  });

  it('refuses damaged files with what is wrong', async () => {
    const png = await sharp(rgba, { raw: { width: SIZE, height: SIZE, channels: 4 } }).png().toBuffer();
    const damage = (bytes: Buffer): string => {
      try {
        decodePng(bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(PngDamage);
        return (err as Error).message;
      }
      throw new Error('decoded a damaged PNG');
    };
    expect(damage(editChunk(png, 'IDAT', (b) => void (b[b.length - 9] = (b[b.length - 9] ?? 0) ^ 0xff), false))).toMatch(/IDAT chunk's checksum is wrong/);
    expect(damage(png.subarray(0, png.length - 30))).toMatch(/runs past the end|ends before its IEND/);
    expect(damage(png.subarray(0, png.length - 12))).toMatch(/ends before its IEND/);
    // A 4x4 gray image whose rows are built here, each starting with its filter byte.
    const gray4 = (rows: Buffer): Buffer => {
      const header = Buffer.from([0, 0, 0, 4, 0, 0, 0, 4, 8, 0, 0, 0, 0]);
      return Buffer.concat([png.subarray(0, 8), chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
    };
    expect(decoded(gray4(Buffer.alloc(20, 0))).data).toEqual(new Uint8Array(16));
    expect(damage(gray4(Buffer.from([9, 1, 2, 3, 4, ...Buffer.alloc(15)])))).toMatch(/row 0 has filter type 9/);
    expect(damage(gray4(Buffer.alloc(15)))).toMatch(/ends early \(15 of 20 bytes\)/);
    expect(damage(gray4(Buffer.alloc(21)))).toMatch(/longer than its 4x4 image/);
    expect(damage(gray4(Buffer.alloc(4000)))).toMatch(/does not inflate: the data inflates to more than 21 bytes/);
    expect(damage(editChunk(gray4(Buffer.alloc(20)), 'IDAT', (b) => b.fill(0)))).toMatch(/does not inflate/);
    // A palette image whose pixels point past the palette.
    const palette = await sharp(rgba, { raw: { width: SIZE, height: SIZE, channels: 4 } }).flatten({ background: '#fff' }).png({ palette: true, colours: 64 }).toBuffer();
    const at = palette.indexOf('PLTE', 0, 'latin1') - 4;
    const cut = Buffer.concat([palette.subarray(0, at), chunk('PLTE', palette.subarray(at + 8, at + 11)), palette.subarray(at + 12 + palette.readUInt32BE(at))]);
    expect(damage(cut)).toMatch(/palette entry \d+, but the palette has 1/);
    expect(damage(Buffer.concat([png.subarray(0, 8), png.subarray(33)]))).toMatch(/first chunk is .*not IHDR/);
  });
});

describe('decodePng with a scratch buffer', () => {
  it('gives the same pixels as without, image after image, larger and smaller, reusing one buffer', async () => {
    const scratch = new Scratch();
    const sizes = [SIZE, 28, SIZE + 7, 12];
    for (const [i, size] of sizes.entries()) {
      const img = draw(test.images.slice(784 * i, 784 * (i + 1)), { size, scale: 1, x: 0, y: 0, ink: [10, 200, 30], alpha: true });
      const png = await sharp(Buffer.from(img.data), { raw: { width: size, height: size, channels: 4 } }).png().toBuffer();
      const fresh = decoded(png);
      const reused = decodePng(png, { scratch });
      expect(reused).not.toBeNull();
      expect(Buffer.from(reused!.data).equals(Buffer.from(fresh.data))).toBe(true);
      expect(reused!.data.buffer).toBe(scratch.take(0).buffer);
    }
  });
});

describe('native inflateInto', () => {
  const data = Buffer.alloc(5000, 7);
  const packed = deflateSync(data);
  it('inflates into the buffer it is given and returns the length', () => {
    const out = new Uint8Array(6000);
    expect(native().inflateInto(packed, out)).toBe(5000);
    expect(Buffer.from(out.subarray(0, 5000)).equals(data)).toBe(true);
  });
  it('names what is wrong: too little room, data cut short, not zlib data, wrong arguments', () => {
    expect(() => native().inflateInto(packed, new Uint8Array(100))).toThrow(/inflates to more than 100 bytes/);
    expect(() => native().inflateInto(packed.subarray(0, packed.length - 6), new Uint8Array(6000))).toThrow(/ends early/);
    expect(() => native().inflateInto(Buffer.from('not zlib at all'), new Uint8Array(10))).toThrow(/invalid: incorrect header check/);
    expect(() => native().inflateInto('x' as unknown as Uint8Array, new Uint8Array(10))).toThrow(TypeError);
    expect(() => native().inflateInto(packed, new Float32Array(10) as unknown as Uint8Array)).toThrow(/dst must be a Uint8Array/);
  });
});
