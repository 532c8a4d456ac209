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
  const n = 28 * scale;
  const out = new Float32Array(n * n);
  const at = (x: number, y: number): number => (x < 0 || y < 0 || x > 27 || y > 27 ? 0 : digit[y * 28 + x]! / 255);
  for (let y = 0; y < n; y++) {
    const sy = (y + 0.5) / scale - 0.5;
    const y0 = Math.floor(sy);
    const fy = sy - y0;
    for (let x = 0; x < n; x++) {
      const sx = (x + 0.5) / scale - 0.5;
      const x0 = Math.floor(sx);
      const fx = sx - x0;
      out[y * n + x] =
        (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) + (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy;
    }
  }
  return out;
}

export function draw(digit: Uint8Array, o: DrawOptions): Rgba {
  const paper = o.paper ?? [245, 242, 235];
  const ink = o.ink ?? [25, 25, 60];
  const data = new Uint8Array(o.size * o.size * 4);
  for (let p = 0; p < o.size * o.size; p++) {
    data.set(paper, 4 * p);
    data[4 * p + 3] = o.alpha ? 0 : 255;
  }
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
        data.set(ink, p);
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
