// The Node side of preprocessing: sniff the format from the bytes, decode (the pixel limit
// is checked against the header before any pixel is decoded), then hand the raw pixels to
// the pure pipeline.
//
// sharp decodes everything, except most PNGs up to 512x512: for those sharp's fixed cost per
// call (a thread-pool hop and a libvips pipeline, ~0.5 ms) is most of the work, so
// png-decode.ts reads them synchronously over node:zlib, when they are 8-bit and not
// interlaced and no more than a fully filtered 160x160 RGBA image's worth of bytes sits in
// filtered rows. `npm run bench:preprocess` times both by size (README, "Preprocessing
// time", 2026-12-07): unfiltered (sharp's default) 256x256 52 against sharp's 454 us, 512x512
// 190 against 888 us; with every row filtered (libpng's adaptive choice) 160x160 241 against
// 480 us, but 256x256 609 against 675 us for as much CPU, and 512x512 slower, so heavily
// filtered images past 160x160 go to sharp.
import { readFile } from 'node:fs/promises';
import type { Sharp, SharpOptions } from 'sharp';
import { ImageError } from './errors.js';
import { decodePng, PngDamage, type DecodedPng } from './png-decode.js';
import { Scratch } from './scratch.js';
import { preprocessPixels, type Channels, type ImageFormat, type PreprocessResult } from './mnistify.js';

export interface PreprocessOptions {
  /** Refuse images whose header declares more pixels than this (default 24 million: a 24 MP photo). */
  maxPixels?: number;
}

export const DEFAULT_MAX_PIXELS = 24_000_000;
/** PNGs up to this many pixels may take the synchronous path (above: sharp's threads are faster). */
const SYNC_PNG_PIXELS = 512 * 512;
/** ...and at most this many bytes in filtered rows (a 160x160 RGBA image's). */
const SYNC_FILTERED_BYTES = 160 * 160 * 4;
/**
 * The synchronous path's inflate buffer, reused: its pixels are turned into the 28x28 result
 * before preprocessImage first yields, so no call sees another's. (Each worker thread loads
 * its own copy of this module.)
 */
const scratch = new Scratch();

type Decoded = Exclude<ImageFormat, 'raw'>;

/** The format from the first bytes, whatever the file is called. */
export function sniffFormat(bytes: Uint8Array): Decoded | undefined {
  const starts = (sig: number[], at = 0): boolean => bytes.length >= at + sig.length && sig.every((b, i) => bytes[at + i] === b);
  if (starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (starts([0xff, 0xd8, 0xff])) return 'jpeg';
  if (starts([0x47, 0x49, 0x46, 0x38]) && (bytes[4] === 0x37 || bytes[4] === 0x39) && bytes[5] === 0x61) return 'gif';
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return 'webp';
  return undefined;
}

function describe(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.subarray(0, 8));
  const text = head.toString('latin1');
  if (text.startsWith('BM')) return 'it looks like a BMP';
  if (text.startsWith('II*\0') || text.startsWith('MM\0*')) return 'it looks like a TIFF';
  if (/^\s*</.test(text)) return 'it looks like text markup (SVG, HTML or XML)';
  return `it starts with bytes ${head.toString('hex').replace(/(..)(?!$)/g, '$1 ')}`;
}

type SharpFactory = (input: Buffer, options: SharpOptions) => Sharp;
let factory: Promise<SharpFactory> | undefined;

// sharp loads libvips, so it is loaded on first use: importing torchlet stays cheap and a
// broken sharp install only affects image decoding, with a message that says how to fix it.
function loadSharp(): Promise<SharpFactory> {
  factory ??= import('sharp').then(
    (m) => m.default,
    (err: unknown) => {
      factory = undefined;
      throw new Error(
        `cannot load sharp, which torchlet uses to decode images (${err instanceof Error ? err.message : String(err)}); ` +
          'reinstall with `npm install sharp` on this platform (see https://sharp.pixelplumbing.com/install)',
        { cause: err },
      );
    },
  );
  return factory;
}

/**
 * Decodes a PNG, JPEG, WebP or GIF (first frame) from a buffer or a file and turns it
 * into an MNIST-like 28x28 image. Refusals are ImageErrors with a code.
 */
export async function preprocessImage(input: Buffer | Uint8Array | string, options: PreprocessOptions = {}): Promise<PreprocessResult> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isSafeInteger(maxPixels) || maxPixels <= 0) throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
  const bytes = typeof input === 'string' ? await readFile(input) : Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const what = typeof input === 'string' ? `'${input}'` : 'the image';
  if (bytes.length === 0) throw new ImageError('empty', `${what} is empty (0 bytes)`);
  const format = sniffFormat(bytes);
  if (format === undefined) throw new ImageError('unsupported_format', `${what} is not a PNG, JPEG, WebP or GIF image: ${describe(bytes)}`);

  if (format === 'png' && bytes.length >= 24 && bytes.toString('latin1', 12, 16) === 'IHDR') {
    const declared = bytes.readUInt32BE(16) * bytes.readUInt32BE(20);
    if (declared > maxPixels) throw tooLarge(what, maxPixels, bytes.readUInt32BE(16), bytes.readUInt32BE(20));
    if (declared <= SYNC_PNG_PIXELS) {
      let png: DecodedPng | null;
      try {
        png = decodePng(bytes, { maxFilteredBytes: SYNC_FILTERED_BYTES, scratch });
      } catch (err) {
        if (err instanceof PngDamage) throw corrupt(err, what, format);
        throw err;
      }
      if (png !== null) return preprocessPixels(png.data, png.width, png.height, png.channels, format);
    }
  }

  const sharp = await loadSharp();
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    decoded = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated', autoOrient: true })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw decodeError(err, what, format, maxPixels);
  }
  const { data, info } = decoded;
  return preprocessPixels(data, info.width, info.height, info.channels as Channels, format);
}

function reasonOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).trim().replace(/\s+/g, ' ');
}

function tooLarge(what: string, maxPixels: number, width?: number, height?: number, cause?: unknown): ImageError {
  const size = width === undefined || height === undefined ? 'more pixels' : `${width}x${height} pixels, more`;
  return new ImageError('too_large', `${what} declares ${size} than the limit of ${maxPixels} (a decompression bomb?); it was not decoded`, { cause });
}

function corrupt(err: unknown, what: string, format: Decoded): ImageError {
  return new ImageError('corrupt', `${what} is a damaged or truncated ${format.toUpperCase()}: ${reasonOf(err)}`, { cause: err });
}

function decodeError(err: unknown, what: string, format: Decoded, maxPixels: number): ImageError {
  return /pixel limit/i.test(reasonOf(err)) ? tooLarge(what, maxPixels, undefined, undefined, err) : corrupt(err, what, format);
}
