// The evaluate and plot commands end to end, through the real CLI entry point.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FILE_NAMES, searchDirs } from '../src/data/mnist.js';
import { Model } from '../src/model.js';
import { models } from '../src/models.js';
import type { EpochRecord } from '../src/train.js';
import { cli as runCli, type CliResult } from './helpers/cli.js';
import { missing } from './helpers/requires.js';


const cli = (...args: string[]): Promise<CliResult> => runCli(args);

// Evaluating needs the real test set; without a local copy (no network in CI) those checks skip.
const dataDir = searchDirs('mnist').find((dir) => Object.values(FILE_NAMES).every((f) => existsSync(join(dir, f))));

let tmp: string;
let superLight: string;
let light: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-cli-'));
  superLight = join(tmp, 'super_light.pt');
  light = join(tmp, 'light.pt');
  // Untrained weights: the command only has to run, not to score well.
  for (const [spec, path] of [[models.super_light, superLight], [models.light, light]] as const) {
    const model = new Model(spec, { seed: 1 });
    model.save(path);
    model.dispose();
  }
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('torchlet evaluate', () => {
  it.skipIf(missing(dataDir !== undefined, 'the MNIST test set'))('prints the report and writes the PNG and JSON', async () => {
    const outDir = join(tmp, 'reports');
    const r = await cli('evaluate', '--model', 'super_light', '--weights', superLight, '--data-dir', dataDir ?? '', '--device', 'cpu', '--out-dir', outDir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/accuracy \d+\.\d\d% \(\d+\/10000\)/);
    expect(r.stdout).toMatch(/macro precision [\d.]+, recall [\d.]+, f1 [\d.]+/);
    const lines = r.stdout.split('\n');
    const header = lines.findIndex((l) => l.trim().startsWith('true\\pred'));
    const rows = lines.slice(header + 1, header + 11).map((l) => l.trim().split(/\s+/).map(Number));
    expect(rows).toHaveLength(10);
    expect(rows.map((row) => row.length)).toEqual(new Array(10).fill(11));
    expect(rows.map((row) => row[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rows.flatMap((row) => row.slice(1)).reduce((a, b) => a + b, 0)).toBe(10_000);

    const png = join(outDir, 'super_light-confusion.png');
    expect(readFileSync(png).subarray(1, 4).toString('ascii')).toBe('PNG');
    expect(statSync(png).size).toBeGreaterThan(10_000);
    const report = JSON.parse(readFileSync(join(outDir, 'super_light-report.json'), 'utf8')) as { count: number; confusionMatrix: number[][] };
    expect(report.count).toBe(10_000);
    expect(report.confusionMatrix).toHaveLength(10);
  });

  it('exits 2 for a missing weights file', async () => {
    const r = await cli('evaluate', '--model', 'super_light', '--weights', join(tmp, 'nope.pt'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot load weights .*nope\.pt.*No such file/);
  });

  it('exits 2 for weights of another architecture, naming the one they fit', async () => {
    const r = await cli('evaluate', '--model', 'super_light', '--weights', light);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("does not match this model's architecture");
    expect(r.stderr).toContain('these weights fit --model light');
  });

  it('exits 2 for an unknown model', async () => {
    const r = await cli('evaluate', '--model', 'heavy', '--weights', superLight);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/'heavy' is invalid.*light, lightest, super_light/);
  });
});

describe('torchlet plot', () => {
  const epoch = (n: number): EpochRecord => ({
    epoch: n,
    trainLoss: 0.5 / n,
    trainAccuracy: 0.9 + n / 100,
    testLoss: 0.4 / n,
    testAccuracy: 0.91 + n / 100,
    stepLoss: 0.5 / n,
    stepAccuracy: 0.9,
    lr: 1e-3,
    seconds: 1,
  });

  it('draws a log next to itself by default', async () => {
    const log = join(tmp, 'run.jsonl');
    const lines = [{ type: 'run', model: 'super_light' }, ...[1, 2, 3].map((n) => ({ type: 'epoch', ...epoch(n) }))];
    writeFileSync(log, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const r = await cli('plot', log);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('3 epochs');
    expect(readFileSync(join(tmp, 'run.png')).subarray(1, 4).toString('ascii')).toBe('PNG');
  });

  it('exits 2 for a malformed log', async () => {
    const log = join(tmp, 'bad.jsonl');
    writeFileSync(log, '{"type":"epoch"\n');
    const r = await cli('plot', log, '--out', join(tmp, 'bad.png'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.jsonl:1: not valid JSON/);
    expect(existsSync(join(tmp, 'bad.png'))).toBe(false);
  });
});
