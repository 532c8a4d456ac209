// Unusable weights files: Model.load and `torchlet evaluate` must refuse them with a
// message that says what is wrong (exit code 2), never crash, and never half-load.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, models, type ModelSpec } from '../../src/index.js';
import { MNIST_DIR, ROOT, cli, escapeRegExp, expectInputError } from '../helpers/cli.js';

let tmp: string;
const files: Record<string, string> = {};

/** SuperLight with a 1x1 classifier after 1x1 pooling: the same keys, one tensor shaped differently. */
const oneShapeOff: ModelSpec = {
  ...models.super_light,
  name: 'super_light_1x1',
  layers: models.super_light.layers.map((l, i) => {
    if (i === 23) return { type: 'adaptiveavgpool2d', output: 1 };
    if (i === 24 && l.type === 'conv2d') return { ...l, kernel: 1 };
    return l;
  }),
};

function save(spec: ModelSpec, path: string): string {
  const model = new Model(spec, { seed: 1 });
  model.save(path);
  model.dispose();
  return path;
}

/** A fixed input's log-probabilities: equal before and after a refused load means nothing was half-copied. */
const probe = new Uint8Array(784).map((_, i) => (i * 7) % 256);
const fingerprint = (model: Model): number[] => Array.from(model.logProbs(probe));

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-bad-weights-'));
  files.good = save(models.super_light, join(tmp, 'good.pt'));
  const bytes = readFileSync(files.good);
  writeFileSync((files.truncated = join(tmp, 'truncated.pt')), bytes.subarray(0, bytes.length >> 1));
  files.light = save(models.light, join(tmp, 'light.pt'));
  files.oneShapeOff = save(oneShapeOff, join(tmp, 'one-shape-off.pt'));
  writeFileSync((files.text = join(tmp, 'notes.pt')), 'epoch 1: 98.1%\nepoch 2: 98.9%\n');
  writeFileSync((files.empty = join(tmp, 'empty.pt')), '');
  mkdirSync((files.directory = join(tmp, 'folder.pt')));
  files.wholeModule = join(ROOT, 'tests', 'fixtures', 'pytorch', 'whole_module.pt');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Case {
  name: string;
  file: string;
  /** The reason, as both Model.load and the CLI give it. */
  message: RegExp;
  /** Text the message must not contain. */
  absent?: RegExp;
  /** Only the CLI adds this. */
  cliHint?: RegExp;
}

const cases: Case[] = [
  { name: 'a truncated .pt', file: 'truncated', message: /is not a readable PyTorch file \(truncated, corrupt or another format\)/ },
  {
    name: 'a .pt of another architecture (light into super_light)',
    file: 'light',
    message: /does not match this model's architecture:\n {2}missing keys \(\d+\):\n[\s\S]*\n {2}unexpected keys \(\d+\):\n[\s\S]*\n {2}shape mismatches \(\d+\):\n[\s\S]*\n {4}9\.weight: file has \[12, 8, 3, 3\], model needs \[4, 8, 1, 1\]/,
    cliHint: /these weights fit --model light/,
  },
  {
    name: 'a super_light-shaped file with one tensor of the wrong shape',
    file: 'oneShapeOff',
    message: /does not match this model's architecture:\n {2}shape mismatches \(1\):\n {4}24\.weight: file has \[10, 16, 1, 1\], model needs \[10, 16, 3, 3\]/,
    absent: /missing keys|unexpected keys/,
  },
  { name: 'a text file', file: 'text', message: /is not a readable PyTorch file \(truncated, corrupt or another format\)/ },
  { name: 'an empty file', file: 'empty', message: /is empty, not a PyTorch state_dict/ },
  { name: 'a directory', file: 'directory', message: /it is a directory/ },
  {
    name: 'a PyTorch file holding a whole pickled module',
    file: 'wholeModule',
    message: /holds a pickled Python object, not a state_dict \(save model\.state_dict\(\), not the model\)/,
  },
];

describe('Model.load refuses unusable weights with an Error', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const model = new Model(models.super_light, { seed: 5 });
    const before = fingerprint(model);
    const path = files[c.file]!;
    expect(() => model.load(path)).toThrow(c.message);
    if (c.absent) expect(() => model.load(path)).not.toThrow(c.absent);
    expect(() => Model.fromFile(models.super_light, path)).toThrow(c.message);
    // Refused means untouched: the model still works and holds its own weights.
    expect(fingerprint(model)).toEqual(before);
    model.load(files.good!);
    expect(fingerprint(model)).not.toEqual(before);
    model.dispose();
  });

  it('a .pt cut at any of 120 points is refused or, if only the zip trailer is lost, loads exactly; never a crash', () => {
    const bytes = readFileSync(files.good!);
    const reference = Model.fromFile(models.super_light, files.good!);
    const expected = fingerprint(reference);
    reference.dispose();
    const cut = join(tmp, 'cut.pt');
    let seed = 12345;
    const lengths = new Set([1, 2, 3, 4, 22, 30, 100, bytes.length - 22, bytes.length - 2, bytes.length - 1]);
    while (lengths.size < 120) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      lengths.add(1 + (seed % (bytes.length - 1)));
    }
    const accepted: number[] = [];
    for (const n of lengths) {
      writeFileSync(cut, bytes.subarray(0, n));
      const model = new Model(models.super_light, { seed: 9 });
      try {
        model.load(cut);
        accepted.push(n);
        // The zip reader tolerates a missing end-of-archive comment length; what it loads must be the real weights.
        expect(fingerprint(model), `cut at ${n} of ${bytes.length} bytes loaded different weights`).toEqual(expected);
      } catch (err) {
        expect((err as Error).message, `cut at ${n} of ${bytes.length} bytes`).toMatch(/not a readable PyTorch file|is empty/);
      } finally {
        model.dispose();
      }
    }
    // Only the last two bytes (the archive comment's length) may go missing unnoticed.
    expect(accepted.every((n) => n >= bytes.length - 2), `accepted cuts: ${accepted.join(', ')}`).toBe(true);
  });
});

describe('torchlet evaluate refuses unusable weights with exit code 2', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const path = files[c.file]!;
    const r = await cli(['evaluate', '--model', 'super_light', '--weights', path, '--data-dir', MNIST_DIR, '--device', 'cpu', '--out-dir', join(tmp, 'reports')]);
    expectInputError(r, new RegExp(`^torchlet: cannot load weights '${escapeRegExp(path)}': `, 'm'));
    expect(r.stderr).toMatch(c.message);
    if (c.absent) expect(r.stderr).not.toMatch(c.absent);
    if (c.cliHint) expect(r.stderr).toMatch(c.cliHint);
    expect(r.stdout).toBe('');
  });
});
