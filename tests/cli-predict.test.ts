import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, expectInputError, expectNoCrash } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'torchlet-predict-'));

interface JsonResult {
  file: string;
  digit: number;
  confidence: number;
  top: { digit: number; probability: number }[];
  probabilities: number[];
  inverted: boolean;
  bbox: unknown;
}

const folder = join(dir, 'digits');
const labels: Record<string, number> = {};
const seven = join(folder, 'test-0.png');

describe('torchlet extract and predict', () => {
  beforeAll(async () => {
    mkdirSync(folder);
    for (const [index, scale] of [[0, 1], [1, 1], [2, 10], [3, 4]] as const) {
      const out = join(folder, `test-${index}.png`);
      const r = await cli(['extract', '--index', String(index), '--out', out, '--scale', String(scale)]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^\d\n$/);
      labels[out] = Number(r.stdout.trim());
      const meta = await sharp(out).metadata();
      expect([meta.width, meta.height, meta.channels]).toEqual([28 * scale, 28 * scale, 1]);
    }
  });

  it('predict classifies the PNGs that extract wrote, with the labels it printed', async () => {
    // MNIST's first test labels.
    expect(Object.values(labels)).toEqual([7, 2, 1, 0]);

    // A folder, read recursively, in sorted order.
    const text = await cli(['predict', folder, '--top', '2']);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    for (const [i, [file, label]] of Object.entries(labels).entries()) {
      expect(lines[i]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+${label}\\s+\\(\\d+\\.\\d+%\\)\\s+top 2: ${label} `));
    }

    const json = await cli(['predict', ...Object.keys(labels), '--json', '--top', '3', '--model', 'lightest']);
    expect(json.code, json.stderr).toBe(0);
    const results = JSON.parse(json.stdout) as JsonResult[];
    expect(results.map((r) => r.digit)).toEqual(Object.values(labels));
    for (const r of results) {
      expect(r.top).toHaveLength(3);
      expect(r.top[0]).toEqual({ digit: r.digit, probability: r.confidence });
      expect(r.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      expect(r.confidence).toBeGreaterThan(0.5);
    }
    // The 28x28 ones were MNIST-like and passed through; the enlarged ones were cropped.
    expect(results.map((r) => r.bbox === null)).toEqual([true, true, false, false]);
  });

  it('reports a bad image, keeps classifying the others, and exits 2', async () => {
    const bad = join(dir, 'bad.png');
    writeFileSync(bad, 'not an image at all');
    const r = await cli(['predict', seven, bad]);
    expectInputError(r, /bad\.png: '.*bad\.png' is not a PNG, JPEG, WebP or GIF image/);
    expect(r.stdout).toMatch(/test-0\.png\s+7\s/);
  });

  it('refuses bad arguments with exit code 2 and one clear line', async () => {
    const empty = join(dir, 'empty-folder');
    mkdirSync(empty);
    const cases: [string[], RegExp][] = [
      [['predict', join(dir, 'missing.png')], /cannot read '.*missing\.png'.*no such file/],
      [['predict', empty], /holds no images/],
      [['predict', 'x.png', '--top', '11'], /--top must be at most 10/],
      [['extract', '--index', '10000'], /--index 10000 is out of range: the test split has 10000 images/],
      [['extract', '--index', '0', '--scale', '65'], /--scale must be at most 64/],
    ];
    for (const [args, pattern] of cases) {
      const r = await cli(args);
      expectNoCrash(r);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(pattern);
    }
  });

  it('names the architecture that weights of another model fit', async () => {
    const r = await cli(['predict', seven, '--model', 'super_light', '--weights', 'weights/light.pt']);
    expectInputError(r, /cannot load weights 'weights\/light\.pt'[\s\S]*these weights fit --model light/);
  });
});
