// Redraws MNIST digits the way people's images look: dark ink on light paper, any size,
// anywhere on the page, sometimes on a transparent background; then encodes them.
import sharp from 'sharp';

export type Format = 'png' | 'jpeg' | 'webp' | 'gif';
export const FORMATS: Format[] = ['png', 'jpeg', 'webp', 'gif'];

export interface Rgba {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DrawOptions {
  /** Canvas size (square). */
  size: number;
  /** Each MNIST pixel becomes scale x scale (bilinear). */
  scale: number;
  x: number;
  y: number;
  paper?: [number, number, number];
  ink?: [number, number, number];
  /** Transparent paper, the ink's strength in alpha (as a canvas drawing is). */
  alpha?: boolean;
}

/** Bilinear upscaling of a 28x28 light-on-black digit, as levels 0..1. */
function upscale(digit: Uint8Array, scale: number): Float32Array {
  // A zero border of one pixel spares the inner loop any bounds checks.
  const padded = new Float32Array(30 * 30);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) padded[(y + 1) * 30 + x + 1] = digit[y * 28 + x]! / 255;
  const n = 28 * scale;
  const index = new Int32Array(n);
  const frac = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = (i + 0.5) / scale - 0.5 + 1;
    index[i] = Math.floor(s);
    frac[i] = s - index[i]!;
  }
  const out = new Float32Array(n * n);
  for (let y = 0; y < n; y++) {
    const r0 = index[y]! * 30;
    const r1 = r0 + 30;
    const fy = frac[y]!;
    for (let x = 0; x < n; x++) {
      const c = index[x]!;
      const fx = frac[x]!;
      const top = padded[r0 + c]! * (1 - fx) + padded[r0 + c + 1]! * fx;
      const bottom = padded[r1 + c]! * (1 - fx) + padded[r1 + c + 1]! * fx;
      out[y * n + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

export function draw(digit: Uint8Array, o: DrawOptions): Rgba {
  const paper = o.paper ?? [245, 242, 235];
  const ink = o.ink ?? [25, 25, 60];
  const data = new Uint8Array(o.size * o.size * 4);
  const texel = Uint8Array.of(...paper, o.alpha ? 0 : 255);
  new Uint32Array(data.buffer).fill(new Uint32Array(texel.buffer)[0]!);
  const n = 28 * o.scale;
  const big = upscale(digit, o.scale);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const cx = o.x + x;
      const cy = o.y + y;
      if (cx < 0 || cy < 0 || cx >= o.size || cy >= o.size) continue;
      const v = big[y * n + x]!;
      const p = 4 * (cy * o.size + cx);
      if (o.alpha) {
        data[p] = ink[0];
        data[p + 1] = ink[1];
        data[p + 2] = ink[2];
        data[p + 3] = Math.round(255 * v);
      } else {
        for (let c = 0; c < 3; c++) data[p + c] = Math.round(paper[c]! * (1 - v) + ink[c]! * v);
      }
    }
  }
  return { data, width: o.size, height: o.size };
}

export async function encode(img: Rgba, format: Format): Promise<Buffer> {
  const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 4 } });
  switch (format) {
    case 'png':
      return s.png().toBuffer();
    case 'jpeg':
      return s.flatten({ background: '#ffffff' }).jpeg({ quality: 85 }).toBuffer();
    case 'webp':
      return s.webp({ quality: 85 }).toBuffer();
    case 'gif':
      return s.gif().toBuffer();
  }
}

/** Light ink on black at the given size: what an MNIST-like but bigger image looks like. */
export function grayImage(width: number, height: number, fill = 0): Uint8Array {
  return new Uint8Array(width * height).fill(fill);
}
