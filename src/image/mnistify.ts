// Turns any picture of one digit into what MNIST's own images look like: light ink on
// black, the ink's longest side 20 px, centred by mass in a 28x28 frame.
//
// Pure and dependency-free (no Node imports, no decoder): the server runs it after sharp
// decodes, and the browser runs the same code on a canvas's ImageData.
import { MNIST_INPUT } from '../spec.js';
import { ImageError } from './errors.js';
import { Scratch } from './scratch.js';

export const FRAME = 28;
/** MNIST scaled each digit so that its longest side fits this box, then centred it by mass. */
export const BOX = 20;
/** After the contrast stretch, ink fainter than this (of 255) is noise: paper grain, JPEG ringing, shadows. */
export const NOISE_LEVEL = 51;
/** Less contrast than this between background and the darkest ink (of 255) is a blank image. */
export const MIN_CONTRAST = 24;
/** A 28x28 image whose border is at most this light already has a black background. */
const BLACK_LEVEL = 8;
/**
 * The work buffers of preprocessPixels, reused (it is synchronous, and what it returns is
 * always new); a 1024x1024 image's worth is kept, bigger ones get their own.
 */
const KEEP_AT_MOST = 1 << 20;
const work = { gray: new Scratch(KEEP_AT_MOST), rowMin: new Scratch(KEEP_AT_MOST), rowMax: new Scratch(KEEP_AT_MOST), crop: new Scratch(KEEP_AT_MOST), mid: new Scratch(KEEP_AT_MOST) };

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif' | 'raw';

export interface BBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PreprocessResult {
  /** 784 values standardised with MNIST's mean and std, as the trainer feeds the models (for ONNX, PyTorch). */
  input: Float32Array;
  /** 784 values 0..255, light ink on black, row-major: what the model sees. `Model.predict` takes this directly. */
  pixels: Uint8Array;
  /** Whether the image had a light background and was inverted. */
  inverted: boolean;
  /** The ink's bounding box in the source image, or null when the image was already MNIST-like and passed through. */
  bbox: BBox | null;
  /** Size of the source image. */
  width: number;
  height: number;
  format: ImageFormat;
}

export type Channels = 1 | 2 | 3 | 4;

/**
 * Preprocesses raw 8-bit pixels, row-major and interleaved: 1 channel (gray), 2 (gray,
 * alpha), 3 (RGB) or 4 (RGBA, as in a canvas's ImageData, the default).
 */
export function preprocessPixels(
  data: Uint8Array | Uint8ClampedArray,
  width: number,
  height: number,
  channels: Channels = 4,
  format: ImageFormat = 'raw',
): PreprocessResult {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`width and height must be non-negative integers, got ${width}x${height}`);
  }
  if (![1, 2, 3, 4].includes(channels)) throw new RangeError(`channels must be 1, 2, 3 or 4, got ${channels}`);
  if (width === 0 || height === 0) throw new ImageError('empty', `the image has no pixels (${width}x${height})`);
  if (data.length !== width * height * channels) {
    throw new RangeError(`${width}x${height}x${channels} pixels need ${width * height * channels} bytes, got ${data.length}`);
  }

  const { gray, rowMin, rowMax, min, max } = toGrayOnWhite(data, width, height, channels);
  if (max - min < MIN_CONTRAST) throw blank(min, max);

  // The background is what the border mostly is; it is light when it sits nearer the
  // light end of this image's range (a gray-paper photo is still "light").
  const borderLevel = median(borderHistogram(gray, width, height));
  const inverted = borderLevel > (min + max) / 2;
  const background = inverted ? 255 - borderLevel : borderLevel;
  const peak = inverted ? 255 - min : max;
  if (peak - background < MIN_CONTRAST) throw blank(min, max);

  if (width === FRAME && height === FRAME && !inverted && background <= BLACK_LEVEL) {
    return { input: standardise(gray), pixels: gray.slice(), inverted, bbox: null, width, height, format };
  }

  // Ink levels are a function of the gray level alone, so the box is found on the gray image
  // through a table, and only the pixels inside it are turned into ink.
  const lut = inkLevels(inverted, background, peak);
  const bbox = inkBox(gray, rowMin, rowMax, lut, inverted, width, height);
  if (bbox === null) throw blank(min, max);

  const longest = Math.max(bbox.width, bbox.height);
  const outW = Math.max(1, Math.round((bbox.width * BOX) / longest));
  const outH = Math.max(1, Math.round((bbox.height * BOX) / longest));
  const small = resample(inkCrop(gray, lut, width, bbox), bbox.width, bbox.height, outW, outH);
  const pixels = centreByMass(small, outW, outH);
  return { input: standardise(pixels), pixels, inverted, bbox, width, height, format };
}

function blank(min: number, max: number): ImageError {
  return new ImageError(
    'blank',
    min === max
      ? `the image is blank (every pixel is ${min}): there is no digit to read`
      : `the image is blank: its contrast (${max - min} of 255) is too low to find a digit`,
  );
}

interface Gray {
  gray: Uint8Array;
  /** The darkest and the lightest level of each row: rows without ink are skipped whole. */
  rowMin: Uint8Array;
  rowMax: Uint8Array;
  min: number;
  max: number;
}

// The byte order of this platform's typed arrays, for reading RGBA pixels as one word.
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
const R_SHIFT = LITTLE_ENDIAN ? 0 : 24;
const G_SHIFT = LITTLE_ENDIAN ? 8 : 16;
const B_SHIFT = LITTLE_ENDIAN ? 16 : 8;
const A_SHIFT = LITTLE_ENDIAN ? 24 : 0;

/**
 * Gray levels with alpha composited on white, rounded to bytes, and their range by row (one
 * pass: the only loop over every pixel). Luma uses ITU-R 601-2 in PIL's fixed point, so an
 * image with R = G = B keeps its values exactly. One loop per layout: a loop that branches
 * on the channel count per pixel costs up to twice as much.
 */
function toGrayOnWhite(data: Uint8Array | Uint8ClampedArray, width: number, height: number, channels: Channels): Gray {
  const g: Gray = { gray: work.gray.take(width * height), rowMin: work.rowMin.take(height), rowMax: work.rowMax.take(height), min: 255, max: 0 };
  if (channels === 4) {
    // A whole pixel in one load: a quarter of the loads, and one compare finds a run.
    const words = data.byteOffset % 4 === 0 ? new Int32Array(data.buffer, data.byteOffset, width * height) : new Int32Array(new Uint8Array(data).buffer);
    rgbaToGray(words, width, height, g);
  } else if (channels === 3) rgbToGray(data, width, height, g);
  else if (channels === 2) grayAlphaToGray(data, width, height, g);
  else {
    g.gray.set(data);
    rangeByRow(g, width, height);
  }
  for (let y = 0; y < height; y++) {
    g.min = Math.min(g.min, g.rowMin[y] ?? 255);
    g.max = Math.max(g.max, g.rowMax[y] ?? 0);
  }
  return g;
}

function rgbaToGray(words: Int32Array, width: number, height: number, { gray, rowMin, rowMax }: Gray): void {
  for (let y = 0, i = 0; y < height; y++) {
    let lo = 255;
    let hi = 0;
    let last = ~(words[i] ?? 0); // differs from the row's first pixel: it is always computed
    let v = 0;
    const end = i + width;
    while (i < end) {
      const w = words[i] ?? 0;
      if (w !== last) {
        last = w;
        v = luma((w >>> R_SHIFT) & 255, (w >>> G_SHIFT) & 255, (w >>> B_SHIFT) & 255);
        const a = (w >>> A_SHIFT) & 255;
        if (a !== 255) v = onWhite(v, a);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        gray[i++] = v;
      } else {
        // A run of the same pixel (paper, a transparent background): scan it, then fill it
        // natively when it is long. A clean 280x280 drawing: 170 -> 100 us; noise, with no
        // runs: 275 -> 295 us.
        const start = i;
        while (++i < end && words[i] === w);
        if (i - start < 16) for (let k = start; k < i; k++) gray[k] = v;
        else gray.fill(v, start, i);
      }
    }
    rowMin[y] = lo;
    rowMax[y] = hi;
  }
}

function rgbToGray(data: Uint8Array | Uint8ClampedArray, width: number, height: number, { gray, rowMin, rowMax }: Gray): void {
  for (let y = 0, i = 0, j = 0; y < height; y++) {
    let lo = 255;
    let hi = 0;
    let r = -1; // no pixel: the row's first is always computed
    let g = 0;
    let b = 0;
    let v = 0;
    for (const end = i + width; i < end; i++, j += 3) {
      const r1 = data[j] ?? 0;
      const g1 = data[j + 1] ?? 0;
      const b1 = data[j + 2] ?? 0;
      if (r1 !== r || g1 !== g || b1 !== b) {
        r = r1;
        g = g1;
        b = b1;
        v = luma(r, g, b);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      gray[i] = v;
    }
    rowMin[y] = lo;
    rowMax[y] = hi;
  }
}

function grayAlphaToGray(data: Uint8Array | Uint8ClampedArray, width: number, height: number, g: Gray): void {
  const { gray } = g;
  for (let i = 0, j = 0; i < gray.length; i++, j += 2) {
    const a = data[j + 1] ?? 0;
    gray[i] = a === 255 ? (data[j] ?? 0) : onWhite(data[j] ?? 0, a);
  }
  rangeByRow(g, width, height);
}

function rangeByRow({ gray, rowMin, rowMax }: Gray, width: number, height: number): void {
  for (let y = 0, i = 0; y < height; y++) {
    let lo = 255;
    let hi = 0;
    for (const end = i + width; i < end; i++) {
      const v = gray[i] ?? 0;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    rowMin[y] = lo;
    rowMax[y] = hi;
  }
}

function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

function onWhite(v: number, a: number): number {
  return ((v * a + 255 * (255 - a) + 127) / 255) | 0;
}

function borderHistogram(gray: Uint8Array, width: number, height: number): Uint32Array {
  const hist = new Uint32Array(256);
  for (let x = 0; x < width; x++) {
    count(hist, gray[x]);
    if (height > 1) count(hist, gray[(height - 1) * width + x]);
  }
  for (let y = 1; y < height - 1; y++) {
    count(hist, gray[y * width]);
    if (width > 1) count(hist, gray[y * width + width - 1]);
  }
  return hist;
}

function count(hist: Uint32Array, v: number | undefined): void {
  if (v !== undefined) hist[v] = (hist[v] ?? 0) + 1;
}

function median(hist: Uint32Array): number {
  let total = 0;
  for (const c of hist) total += c;
  let seen = 0;
  for (let v = 0; v < 256; v++) {
    seen += hist[v] ?? 0;
    if (2 * seen >= total) return v;
  }
  return 255;
}

/**
 * Ink as light-on-black levels, by gray level: inverted if needed, the background level
 * subtracted, the contrast stretched so the strongest ink is 255, and anything under
 * NOISE_LEVEL zeroed.
 */
function inkLevels(inverted: boolean, background: number, peak: number): Uint8Array {
  const lut = new Uint8Array(256);
  const gain = 255 / (peak - background);
  for (let v = 0; v < 256; v++) {
    const level = (inverted ? 255 - v : v) - background;
    const s = Math.min(255, Math.round(level * gain));
    lut[v] = s < NOISE_LEVEL ? 0 : s;
  }
  return lut;
}

/**
 * The bounding box of the pixels with ink, or null when there are none. The table rises with
 * the ink (falls with the gray level when inverted), so a pixel has ink when its level, flipped
 * when inverted, reaches one threshold; a row has ink when its extreme level does.
 */
function inkBox(gray: Uint8Array, rowMin: Uint8Array, rowMax: Uint8Array, lut: Uint8Array, inverted: boolean, width: number, height: number): BBox | null {
  const flip = inverted ? 255 : 0;
  let threshold = 0;
  while (threshold < 256 && lut[threshold ^ flip] === 0) threshold++;
  const extremes = inverted ? rowMin : rowMax;
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    if (((extremes[y] ?? 0) ^ flip) < threshold) continue;
    if (y0 === height) y0 = y;
    y1 = y;
    // Only ink outside the box so far can widen it.
    const row = y * width;
    let first = 0;
    while (first < x0 && ((gray[row + first] ?? 0) ^ flip) < threshold) first++;
    x0 = first;
    let last = width - 1;
    while (last > x1 && ((gray[row + last] ?? 0) ^ flip) < threshold) last--;
    x1 = last;
  }
  return x1 < 0 ? null : { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
}

/** The ink levels of the pixels inside `box`, row-major. */
function inkCrop(gray: Uint8Array, lut: Uint8Array, width: number, box: BBox): Uint8Array {
  const out = work.crop.take(box.width * box.height);
  for (let y = 0; y < box.height; y++) {
    const row = (box.y + y) * width + box.x;
    const o = y * box.width;
    for (let x = 0; x < box.width; x++) out[o + x] = lut[gray[row + x] ?? 0] ?? 0;
  }
  return out;
}

interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float32Array;
  /** Taps per output sample: the stride of `weights`. */
  span: number;
}

/**
 * Resampling weights with a triangle filter widened by the scale factor when shrinking,
 * as PIL's resize (BILINEAR) does: every input pixel contributes, so thin strokes
 * survive a large reduction instead of aliasing away.
 */
function taps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle's support is 1
  const span = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * span);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
    let total = 0;
    for (let i = lo; i < hi; i++) {
      const w = Math.max(0, 1 - Math.abs((i - centre + 0.5) / filterScale));
      weights[o * span + i - lo] = w;
      total += w;
    }
    if (total > 0) for (let i = 0; i < hi - lo; i++) weights[o * span + i] = (weights[o * span + i] ?? 0) / total;
    start[o] = lo;
    count[o] = hi - lo;
  }
  return { start, count, weights, span };
}

/** Separable resampling of a width x height image to outW x outH floats. */
function resample(src: Uint8Array, width: number, height: number, outW: number, outH: number): Float32Array {
  const tx = taps(width, outW);
  const ty = taps(height, outH);
  const mid = work.mid.takeFloats(height * outW);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let o = 0; o < outW; o++) {
      const base = o * tx.span;
      const s = row + (tx.start[o] ?? 0);
      let acc = 0;
      for (let k = 0, n = tx.count[o] ?? 0; k < n; k++) {
        // Most of a digit's box is background; skipping its zeros leaves every sum as it was.
        const v = src[s + k] ?? 0;
        if (v !== 0) acc += v * (tx.weights[base + k] ?? 0);
      }
      mid[y * outW + o] = acc;
    }
  }
  const out = new Float32Array(outW * outH);
  for (let o = 0; o < outH; o++) {
    const base = o * ty.span;
    const s = ty.start[o] ?? 0;
    for (let k = 0, n = ty.count[o] ?? 0; k < n; k++) {
      const w = ty.weights[base + k] ?? 0;
      const r = (s + k) * outW;
      for (let x = 0; x < outW; x++) out[o * outW + x] = (out[o * outW + x] ?? 0) + (mid[r + x] ?? 0) * w;
    }
  }
  return out;
}

/**
 * Places the digit in the 28x28 frame so that its centre of mass falls on the frame's
 * centre (to the nearest pixel, never pushing ink out of the frame).
 */
function centreByMass(img: Float32Array, w: number, h: number): Uint8Array {
  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = img[y * w + x] ?? 0;
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  const centre = FRAME / 2;
  const dx = clamp(Math.round(centre - mx / mass), 0, FRAME - w);
  const dy = clamp(Math.round(centre - my / mass), 0, FRAME - h);
  const out = new Uint8Array(FRAME * FRAME);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) out[(y + dy) * FRAME + x + dx] = Math.min(255, Math.round(img[y * w + x] ?? 0));
  }
  return out;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

// Float32 steps, as the trainer's native normalisation computes (v / 255 - mean) / std.
const MEAN = Math.fround(MNIST_INPUT.mean?.[0] ?? 0);
const STD = Math.fround(MNIST_INPUT.std?.[0] ?? 1);
const STANDARD = Float32Array.from({ length: 256 }, (_, v) => Math.fround(Math.fround(v / 255) - MEAN) / STD);

function standardise(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = STANDARD[pixels[i] ?? 0] ?? 0;
  return out;
}
