// A synchronous PNG reader for the PNGs a model server mostly gets: 8-bit, not interlaced
// (canvas exports, screenshots, scans saved by an editor). The addon inflates (Node's own
// zlib, into a buffer the caller may reuse); the rows are unfiltered here into the image's
// own channels, with no widening to RGBA.
//
// Why not sharp for these: sharp's fixed cost per call (a thread-pool hop and a libvips
// pipeline) is ~0.5 ms, and for a 280x280 upload it was three quarters of the preprocessing
// (`npm run bench:preprocess`). Why not pngjs: it widens every pixel to RGBA in general-purpose
// JS, 575 us for 280x280 against 80 us to inflate it. Anything this reader does not cover
// (16-bit or sub-byte samples, Adam7, colour profiles, EXIF orientation, a transparent colour
// key) it leaves to sharp by returning null, so a PNG's pixels do not depend on which path
// read it.
import { crc32 } from 'node:zlib';
import { native } from '../native.js';
import type { Channels } from './mnistify.js';
import type { Scratch } from './scratch.js';

export interface DecodedPng {
  data: Uint8Array;
  width: number;
  height: number;
  channels: Channels;
}

/** Thrown for a PNG that is damaged or cut short; the caller words it for its user. */
export class PngDamage extends Error {}

const CHANNELS: Partial<Record<number, Channels>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Larger images go to sharp, which streams them; this reader holds the whole inflated image. */
const MAX_BYTES = 64 << 20;

export interface DecodePngOptions {
  /**
   * Return null, after inflating, when more than this many bytes sit in filtered rows: an
   * unfiltered row is one copy, a filtered one costs 1-3 ns a byte here (Paeth the most),
   * where a native decoder elsewhere may do better. Default: no limit.
   */
  maxFilteredBytes?: number;
  /**
   * Inflate into this scratch's buffer (grown as needed) instead of a new one: the pixels
   * returned are then a view of it, valid until the scratch's next use. For a caller that
   * decodes one image after another and is done with each before the next (the server's
   * preprocessing): 313 KB of garbage fewer per 280x280 RGBA upload.
   */
  scratch?: Scratch;
}

/**
 * The pixels of an 8-bit, non-interlaced PNG of up to 64 MiB, or null when the file needs a
 * full decoder. `png` must start with the PNG signature. Throws PngDamage for a file that is
 * damaged: a bad checksum, a chunk or the image data cut short, an unknown filter, a palette
 * index out of range.
 */
export function decodePng(png: Buffer, options: DecodePngOptions = {}): DecodedPng | null {
  let width = 0;
  let height = 0;
  let colourType = -1;
  let palette: Buffer | undefined;
  let alpha: Buffer | undefined;
  const idat: Buffer[] = [];
  let ended = false;
  for (let p = 8; p < png.length; ) {
    const first = p === 8;
    if (p + 12 > png.length) throw new PngDamage('the file ends inside a chunk header');
    const length = png.readUInt32BE(p);
    const type = png.toString('latin1', p + 4, p + 8);
    const end = p + 8 + length;
    if (end + 4 > png.length) throw new PngDamage(`the ${printable(type)} chunk runs past the end of the file`);
    if (crc32(png.subarray(p + 4, end)) !== png.readUInt32BE(end)) throw new PngDamage(`the ${printable(type)} chunk's checksum is wrong`);
    const body = png.subarray(p + 8, end);
    p = end + 4;
    if (first !== (type === 'IHDR')) throw new PngDamage(first ? `the first chunk is ${printable(type)}, not IHDR` : 'the file has a second IHDR chunk');
    if (type === 'IHDR') {
      if (length !== 13) throw new PngDamage(`the IHDR chunk is ${length} bytes, not 13`);
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      colourType = body[9] ?? -1;
      if (width === 0 || height === 0) throw new PngDamage(`the header declares ${width}x${height} pixels`);
      // Depth, compression, filter method and interlace: anything but 8, 0, 0, 0 goes to sharp.
      if (body[8] !== 8 || CHANNELS[colourType] === undefined || body[10] !== 0 || body[11] !== 0 || body[12] !== 0) return null;
    } else if (type === 'PLTE') palette = body;
    else if (type === 'tRNS') {
      if (colourType !== 3) return null;
      alpha = body;
    } else if (type === 'iCCP' || type === 'eXIf') return null;
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') {
      ended = true;
      break;
    }
  }
  if (!ended) throw new PngDamage('the file ends before its IEND chunk');
  if (idat.length === 0) throw new PngDamage('the file has no image data (IDAT)');
  const channels = CHANNELS[colourType] as Channels;
  const stride = width * channels;
  const size = (stride + 1) * height;
  if (size > MAX_BYTES) return null;
  // One byte more than the image: a stream that inflates to more is damaged, and the addon
  // says so instead of writing past the image (the header's size was checked first).
  const out = options.scratch?.take(size + 1) ?? new Uint8Array(size + 1);
  let inflated: number;
  try {
    inflated = native().inflateInto(idat.length === 1 ? (idat[0] as Buffer) : Buffer.concat(idat), out);
  } catch (err) {
    throw new PngDamage(`the image data does not inflate: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (inflated < size) throw new PngDamage(`the image data ends early (${inflated} of ${size} bytes)`);
  if (inflated > size) throw new PngDamage(`the image data is longer than its ${width}x${height} image`);
  const raw = out.subarray(0, size);
  if (options.maxFilteredBytes !== undefined) {
    let filtered = 0;
    for (let y = 0; y < height; y++) if (raw[y * (stride + 1)] !== 0) filtered += stride;
    if (filtered > options.maxFilteredBytes) return null;
  }
  const pixels = unfilter(raw, stride, height, channels);
  if (colourType !== 3) return { data: pixels, width, height, channels };
  if (palette === undefined) throw new PngDamage('the image is palette-based but has no PLTE chunk');
  return expandPalette(pixels, palette, alpha, width, height);
}

function printable(type: string): string {
  return /^[A-Za-z]{4}$/.test(type) ? type : JSON.stringify(type);
}

/**
 * Undoes the five scanline filters of PNG (RFC 2083, 6) for whole-byte pixels of `bpp` bytes,
 * in place: row y moves y + 1 bytes left (dropping the filter bytes), and each byte is written
 * only after the bytes it overwrites were read. The first pixel of a row and the first row
 * (whose neighbours read as 0) have loops of their own, so that the loops over most bytes do
 * not branch on where they are.
 */
function unfilter(raw: Uint8Array, stride: number, height: number, bpp: number): Uint8Array {
  const out = new Uint8Array(raw.buffer, raw.byteOffset, stride * height);
  // A zero row above the first: Up, Average and Paeth then need no case for row 0.
  const zero = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const s = y * (stride + 1) + 1;
    const filter = raw[s - 1];
    if (filter === 0) {
      raw.copyWithin(y * stride, s, s + stride);
      continue;
    }
    const row = out.subarray(y * stride, (y + 1) * stride);
    const up = y === 0 ? zero : out.subarray((y - 1) * stride, y * stride);
    const line = raw.subarray(s, s + stride);
    if (filter === 1) {
      row.set(line.subarray(0, bpp));
      for (let i = bpp; i < stride; i++) row[i] = ((line[i] as number) + (row[i - bpp] as number)) & 255;
    } else if (filter === 2) {
      for (let i = 0; i < stride; i++) row[i] = ((line[i] as number) + (up[i] as number)) & 255;
    } else if (filter === 3) {
      for (let i = 0; i < bpp; i++) row[i] = ((line[i] as number) + ((up[i] as number) >> 1)) & 255;
      for (let i = bpp; i < stride; i++) row[i] = ((line[i] as number) + (((row[i - bpp] as number) + (up[i] as number)) >> 1)) & 255;
    } else if (filter === 4) {
      // With a = c = 0 Paeth picks b: the first pixel adds the byte above.
      for (let i = 0; i < bpp; i++) row[i] = ((line[i] as number) + (up[i] as number)) & 255;
      for (let i = bpp; i < stride; i++) {
        const a = row[i - bpp] as number;
        const b = up[i] as number;
        const c = up[i - bpp] as number;
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - c - c);
        row[i] = ((line[i] as number) + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 255;
      }
    } else throw new PngDamage(`row ${y} has filter type ${filter}, which PNG does not define`);
  }
  return out;
}

/** Palette indexes to RGB, or to RGBA when a tRNS chunk gives the entries alpha. */
function expandPalette(index: Uint8Array, palette: Buffer, alpha: Buffer | undefined, width: number, height: number): DecodedPng {
  const entries = Math.floor(palette.length / 3);
  const channels: Channels = alpha === undefined ? 3 : 4;
  const data = new Uint8Array(index.length * channels);
  for (let i = 0, j = 0; i < index.length; i++, j += channels) {
    const k = index[i] ?? 0;
    if (k >= entries) throw new PngDamage(`pixel ${i % width},${Math.floor(i / width)} uses palette entry ${k}, but the palette has ${entries}`);
    data[j] = palette[3 * k] ?? 0;
    data[j + 1] = palette[3 * k + 1] ?? 0;
    data[j + 2] = palette[3 * k + 2] ?? 0;
    if (alpha !== undefined) data[j + 3] = alpha[k] ?? 255;
  }
  return { data, width, height, channels };
}
