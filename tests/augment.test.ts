// The CPU warp kernel behind --aug against libtorch's grid_sample (bilinear or nearest,
// zero padding, align_corners=false), which other devices use; the elastic displacement
// and warp against torchvision's ElasticTransform; and the batched augmentation end to end
// on real MNIST digits.
import { describe, expect, it } from 'vitest';
import { parseConfigText, resolveConfig } from '../src/config.js';
import { loadRawDataset } from '../src/data/mnist.js';
import { Dataset, native, REFERENCE_AUGMENT } from '../src/index.js';
import { pythonHas, runPythonJson } from './helpers/python.js';
import { missing } from './helpers/requires.js';

const b = native();

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** theta mapping output pixel edges (x, y, 1) to grid_sample's [-1, 1] source coordinates. */
function identity(h: number, w: number): number[] {
  return [2 / w, 0, -1, 0, 2 / h, -1, 0, 0, 1];
}

/** Identity plus a random affine part and a random perspective part, some reaching far outside the image. */
function randomWarps(n: number, h: number, w: number, seed: number): Float32Array {
  const r = rng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = identity(h, w);
    const j = (s: number): number => (r() - 0.5) * s;
    out.push(m[0]! + j(0.05), m[1]! + j(0.05), m[2]! + j(0.6), m[3]! + j(0.05), m[4]! + j(0.05), m[5]! + j(0.6), j(0.01), j(0.01), 1 + j(0.1));
  }
  return Float32Array.from(out);
}

function images(numel: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: numel }, () => r());
}

function maxAbsDiff(a: Float32Array, c: Float32Array): number {
  expect(a.length).toBe(c.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - c[i]!)), 0);
}

describe('warp kernel', () => {
  const shape: [number, number, number, number] = [24, 2, 20, 28];
  const x = images(24 * 2 * 20 * 28, 1);

  it('matches grid_sample, bilinear, for random affine and perspective warps', () => {
    const { direct, gridSample } = b.warpImages({ x, shape, theta: randomWarps(24, 20, 28, 2) });
    expect(maxAbsDiff(direct, gridSample)).toBeLessThan(1e-4);
    // Some samples fell outside the image and read zero padding; most did not.
    const zeros = direct.filter((v) => v === 0).length / direct.length;
    expect(zeros).toBeGreaterThan(0.01);
    expect(zeros).toBeLessThan(0.5);
  });

  it('matches grid_sample, nearest, except where rounding ties fall differently', () => {
    const { direct, gridSample } = b.warpImages({ x, shape, theta: randomWarps(24, 20, 28, 3), nearest: true });
    const differing = direct.filter((v, i) => v !== gridSample[i]).length;
    expect(differing / direct.length).toBeLessThan(1e-3);
  });

  it('matches grid_sample with elastic displacements on top of the warps', () => {
    const r = rng(4);
    const displacement = Float32Array.from({ length: 24 * 20 * 28 * 2 }, () => (r() - 0.5) * 0.3);
    const { direct, gridSample } = b.warpImages({ x, shape, theta: randomWarps(24, 20, 28, 5), displacement });
    expect(maxAbsDiff(direct, gridSample)).toBeLessThan(1e-4);
    const { direct: still } = b.warpImages({ x, shape, theta: randomWarps(24, 20, 28, 5) });
    expect(maxAbsDiff(direct, still)).toBeGreaterThan(0.1);
  });

  it('leaves images unchanged under the identity warp', () => {
    const theta = Float32Array.from({ length: 24 * 9 }, (_, i) => identity(20, 28)[i % 9]!);
    const { direct } = b.warpImages({ x, shape, theta });
    expect(maxAbsDiff(direct, x)).toBeLessThan(1e-5);
  });
});

describe('reference augmentation on MNIST', () => {
  it('moves digits a little, keeps their ink, and depends only on the seed', async () => {
    const { test: split } = await loadRawDataset({});
    const raw = split.images.subarray(0, 64 * 784);
    using data = Dataset.fromArrays(raw, split.labels.subarray(0, 64), [64, 1, 28, 28]);
    const a = b.augmentBatch(data.handle, 0, 64, REFERENCE_AUGMENT, 5);
    const again = b.augmentBatch(data.handle, 0, 64, REFERENCE_AUGMENT, 5);
    const other = b.augmentBatch(data.handle, 0, 64, REFERENCE_AUGMENT, 6);
    expect(Buffer.from(again.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    expect(Buffer.from(other.buffer).equals(Buffer.from(a.buffer))).toBe(false);
    for (let i = 0; i < 64; i++) {
      let ink = 0;
      let inkAug = 0;
      let moved = 0;
      for (let p = 0; p < 784; p++) {
        const v = raw[i * 784 + p]! / 255;
        const w = a[i * 784 + p]!;
        ink += v;
        inkAug += w;
        moved += Math.abs(v - w);
      }
      // Rotation <= 5 degrees, shift <= 1.4 px, mild shear and perspective: the digit stays
      // whole (MNIST digits have a 4-pixel border), yet most images change.
      expect(Math.abs(inkAug - ink) / ink, `image ${i}`).toBeLessThan(0.25);
      expect(moved, `image ${i}`).toBeGreaterThan(0);
    }
  });
});

describe.skipIf(missing(pythonHas('torchvision'), '/usr/bin/python3 with torchvision'))('elastic augmentation against torchvision', () => {
  // torchvision 0.14's ElasticTransform.get_params with its torch.rand noise given, then
  // F.elastic_transform on the same images.
  const PEER = `
import json, sys, torch
import torchvision.transforms.functional as F
req = json.load(sys.stdin)
n, _, h, w = req["shape"]
noise = torch.tensor(req["noise"], dtype=torch.float32).view(n, 2, h, w)
x = torch.tensor(req["x"], dtype=torch.float32).view(n, 1, h, w)
alpha, sigma = req["alpha"], req["sigma"]
k = int(8 * sigma + 1)
k += 1 - k % 2
out_d, out_x = [], []
for i in range(n):
    dx = F.gaussian_blur(noise[i:i + 1, 0:1], [k, k], [sigma, sigma]) * alpha / h
    dy = F.gaussian_blur(noise[i:i + 1, 1:2], [k, k], [sigma, sigma]) * alpha / w
    d = torch.concat([dx, dy], 1).permute([0, 2, 3, 1])
    out_d.append(d)
    out_x.append(F.elastic_transform(x[i], d))
print(json.dumps({"displacement": torch.cat(out_d).flatten().tolist(), "x": torch.stack(out_x).flatten().tolist()}))
`;

  it('gives the displacement and the warped digits torchvision gives from the same noise', async () => {
    const { test: split } = await loadRawDataset({});
    const n = 6;
    const x = Float32Array.from(split.images.subarray(0, n * 784), (v) => v / 255);
    const r = rng(7);
    const noise = Float32Array.from({ length: n * 2 * 784 }, () => r() * 2 - 1);
    const [alpha, sigma] = [50, 5];
    const peer = runPythonJson<{ displacement: number[]; x: number[] }>(['-c', PEER], { shape: [n, 2, 28, 28], noise: [...noise], x: [...x], alpha, sigma });
    const displacement = b.elasticDisplacement({ noise, shape: [n, 2, 28, 28], alpha, sigma });
    expect(maxAbsDiff(displacement, Float32Array.from(peer.displacement))).toBeLessThan(1e-6);
    // About a pixel of displacement at alpha 50: large enough to move strokes.
    const pixels = displacement.map((d) => Math.abs(d) * 14);
    expect(pixels.reduce((a, v) => a + v, 0) / pixels.length).toBeGreaterThan(0.3);
    const theta = Float32Array.from({ length: n * 9 }, (_, i) => identity(28, 28)[i % 9]!);
    const { direct } = b.warpImages({ x, shape: [n, 1, 28, 28], theta, displacement });
    expect(maxAbsDiff(direct, Float32Array.from(peer.x))).toBeLessThan(1e-5);
    expect(maxAbsDiff(direct, x)).toBeGreaterThan(0.2);
  });

  it('draws from the seed alone, keeps the ink, and names a bad alpha or a blur too wide for the image', async () => {
    const { test: split } = await loadRawDataset({});
    const raw = split.images.subarray(0, 16 * 784);
    using data = Dataset.fromArrays(raw, split.labels.subarray(0, 16), [16, 1, 28, 28]);
    const elastic = { ...REFERENCE_AUGMENT, elastic: { alpha: 34, sigma: 4 } };
    const a = b.augmentBatch(data.handle, 0, 16, elastic, 5);
    expect(Buffer.from(b.augmentBatch(data.handle, 0, 16, elastic, 5).buffer).equals(Buffer.from(a.buffer))).toBe(true);
    const affineOnly = b.augmentBatch(data.handle, 0, 16, REFERENCE_AUGMENT, 5);
    // The affine draws come first and are the same; the elastic field then moves strokes.
    expect(maxAbsDiff(a, affineOnly)).toBeGreaterThan(0.2);
    const ink = (v: ArrayLike<number>, i: number, scale: number): number => Array.from({ length: 784 }, (_, p) => v[i * 784 + p]! / scale).reduce((s, q) => s + q, 0);
    for (let i = 0; i < 16; i++) expect(Math.abs(ink(a, i, 1) - ink(raw, i, 255)) / ink(raw, i, 255), `image ${i}`).toBeLessThan(0.25);
    expect(() => b.augmentBatch(data.handle, 0, 16, { elastic: { alpha: -1 } }, 5)).toThrow('augment.elastic.alpha must be a finite number >= 0');
    expect(() => b.augmentBatch(data.handle, 0, 16, { elastic: { sigma: 7 } }, 5)).toThrow(
      'augment.elastic.sigma 7 needs a 57-pixel blur, whose reflect padding (28) must be smaller than the image (28x28)',
    );
    expect(() => b.augmentBatch(data.handle, 0, 16, { elastic: { sigma: 1e300 } }, 5)).toThrow(/augment\.elastic\.sigma 1e\+300 needs a 1000000001-pixel blur/);
  });
});

describe('elastic augmentation in a config', () => {
  it('reaches the recipe from YAML, and a bad value names its field', () => {
    const cfg = parseConfigText('augment: { degrees: 5, elastic: { alpha: 34, sigma: 4 } }', 'yaml', "'run.yaml'");
    const { config, recipe } = resolveConfig(cfg, "'run.yaml'");
    expect(config.aug).toBe(true);
    expect(recipe.augment).toEqual({ degrees: 5, elastic: { alpha: 34, sigma: 4 } });
    expect(() => parseConfigText('augment: { elastic: { alpha: -3 } }', 'yaml', "'run.yaml'")).toThrow(/augment\.elastic\.alpha/);
    expect(() => parseConfigText('augment: { elastic: { beta: 1 } }', 'yaml', "'run.yaml'")).toThrow(/beta/);
  });
});
