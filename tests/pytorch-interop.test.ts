// Weights cross between PyTorch and torchlet in both directions. The fixtures in
// tests/fixtures/pytorch/ come from scripts/fixtures/gen_pytorch_weights.py; the reverse
// direction spawns Debian's /usr/bin/python3 (python3-torch) on python/torchlet_models.py.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { native, type NativeModel } from '../src/native.js';
import { models, type ModelName } from '../src/models.js';
import { defineModel, layers as L } from '../src/spec.js';
import { missing } from './helpers/requires.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURES = join(ROOT, 'tests', 'fixtures', 'pytorch');
const PYTHON_DIR = join(ROOT, 'python');
const PYTHON = '/usr/bin/python3';
const MODEL_NAMES = Object.keys(models) as ModelName[];

interface Expected {
  model: string;
  shape: [number, number, number, number];
  labels: number[];
  pixels: number[][];
  logProbs: number[][];
}

const expected = JSON.parse(readFileSync(join(FIXTURES, 'super_light_expected.json'), 'utf8')) as Expected;

function pythonHasTorch(): boolean {
  if (!existsSync(PYTHON)) return false;
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
  return r.status === 0;
}
const noPythonTorch = !pythonHasTorch();

/** A folder holding the MNIST test set: TORCHLET_DATA, data/mnist, ../shared/datasets/mnist or the download cache. */
const mnistDir = [
  ...(process.env.TORCHLET_DATA ? [join(process.env.TORCHLET_DATA, 'mnist'), process.env.TORCHLET_DATA] : []),
  join(ROOT, 'data', 'mnist'),
  join(ROOT, '..', 'shared', 'datasets', 'mnist'),
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'torchlet', 'mnist'),
].find((d) => existsSync(join(d, 't10k-images-idx3-ubyte.gz')) && existsSync(join(d, 't10k-labels-idx1-ubyte.gz')));

/** Runs Python code with python/ on sys.path; returns stdout, failing the test with stderr on error. */
function runPython(args: string[], input?: string): string {
  const r = spawnSync(PYTHON, args, {
    cwd: ROOT,
    encoding: 'utf8',
    input,
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, PYTHONPATH: PYTHON_DIR, PYTHONDONTWRITEBYTECODE: '1', OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} exited with ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

function newModel(name: ModelName, seed = 0): NativeModel {
  return new (native().Model)(models[name], { seed });
}

function pixelsOf(images: number[][]): Uint8Array {
  return Uint8Array.from(images.flat());
}

/** Largest absolute difference between a flat Float32Array and rows of numbers. */
function maxAbsDiff(actual: Float32Array, rows: number[][]): number {
  const flat = rows.flat();
  expect(actual).toHaveLength(flat.length);
  return flat.reduce((m, v, i) => Math.max(m, Math.abs((actual[i] ?? Number.NaN) - v)), 0);
}

const tmp = mkdtempSync(join(tmpdir(), 'torchlet-interop-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('PyTorch -> torchlet', () => {
  it('fixtures stay small', () => {
    const names = ['super_light_pytorch.pt', 'super_light_expected.json', 'whole_module.pt', 'light_pytorch.pt'];
    const total = names.reduce((n, f) => n + readFileSync(join(FIXTURES, f)).length, 0);
    expect(total).toBeLessThan(100 * 1024);
  });

  it('loads a PyTorch state_dict and reproduces PyTorch eval-mode log-probabilities', () => {
    const model = newModel('super_light', 123);
    try {
      model.load(join(FIXTURES, 'super_light_pytorch.pt'));
      expect(expected.pixels).toHaveLength(4);
      const fromBytes = model.predict(pixelsOf(expected.pixels));
      expect(maxAbsDiff(fromBytes, expected.logProbs)).toBeLessThan(1e-5);
      const scaled = Float32Array.from(expected.pixels.flat(), (p) => p / 255);
      expect(maxAbsDiff(model.predict(scaled), expected.logProbs)).toBeLessThan(1e-5);
    } finally {
      model.dispose();
    }
  });

  it('also reads the non-default BatchNorm running statistics (eval mode differs from fresh stats)', () => {
    // With freshly initialised running stats (mean 0, var 1) the outputs would differ a lot:
    // this guards against a loader that silently skips buffers.
    const model = newModel('super_light', 0);
    try {
      const fresh = model.predict(pixelsOf(expected.pixels));
      expect(maxAbsDiff(fresh, expected.logProbs)).toBeGreaterThan(1e-3);
    } finally {
      model.dispose();
    }
  });

  it('refuses a state_dict of another architecture (SuperLight into Light), naming missing and unexpected keys', () => {
    const model = newModel('light');
    try {
      let message = '';
      try {
        model.load(join(FIXTURES, 'super_light_pytorch.pt'));
      } catch (err) {
        message = err instanceof Error ? err.message : String(err);
      }
      expect(message).not.toBe('');
      expect(message).toMatch(/missing keys/i);
      expect(message).toMatch(/unexpected keys/i);
      // Light's "2.weight" (a conv) is absent from the SuperLight file; its BN buffers are unexpected.
      expect(message).toMatch(/2\.weight/);
      expect(message).toMatch(/1\.running_mean/);
      expect(message).toMatch(/num_batches_tracked/);
    } finally {
      model.dispose();
    }
  });

  // light_pytorch.pt is what `torch.save(model.state_dict())` writes: a pickled
  // collections.OrderedDict with `_metadata`, which libtorch 1.13's unpickler cannot read
  // by itself (native/pickle_compat.cc rewrites it). Loading it and saving it back must
  // give exactly PyTorch's tensors.
  it.skipIf(missing(!noPythonTorch, '/usr/bin/python3 with torch'))('loads the OrderedDict that torch.save(model.state_dict()) writes, tensor for tensor', () => {
    const model = newModel('light', 7);
    const dir = mkdtempSync(join(tmpdir(), 'torchlet-odict-'));
    try {
      model.load(join(FIXTURES, 'light_pytorch.pt'));
      model.save(join(dir, 'roundtrip.pt'));
      const script = [
        'import sys, torch',
        'a = torch.load(sys.argv[1]); b = torch.load(sys.argv[2])',
        'assert list(a.keys()) == list(b.keys()), (list(a.keys()), list(b.keys()))',
        'assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]',
        'print(len(a))',
      ].join('\n');
      const out = execFileSync(PYTHON, ['-c', script, join(FIXTURES, 'light_pytorch.pt'), join(dir, 'roundtrip.pt')], { encoding: 'utf8' });
      expect(Number(out.trim())).toBe(14);
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an OrderedDict of another architecture, naming missing and unexpected keys', () => {
    const model = newModel('super_light');
    try {
      expect(() => model.load(join(FIXTURES, 'light_pytorch.pt'))).toThrow(/missing keys[\s\S]*unexpected keys/i);
    } finally {
      model.dispose();
    }
  });

  it('refuses a pickled whole module with an error that points at state_dict', () => {
    const model = newModel('light');
    try {
      expect(() => model.load(join(FIXTURES, 'whole_module.pt'))).toThrow(/not a state_dict \(save model\.state_dict\(\), not the model\)/);
    } finally {
      model.dispose();
    }
  });

  it('refuses a pickled whole module with an error naming the file and the pickled class', () => {
    const model = newModel('light');
    try {
      expect(() => model.load(join(FIXTURES, 'whole_module.pt'))).toThrow(/whole_module\.pt[\s\S]*torchlet_models\.Light/);
    } finally {
      model.dispose();
    }
  });
});

describe.skipIf(missing(!noPythonTorch, '/usr/bin/python3 with torch'))('torchlet -> PyTorch (spawns /usr/bin/python3)', () => {
  it('python/torchlet_models.py has the documented parameter counts and torchlet\'s exact state_dict keys and shapes', () => {
    const info = JSON.parse(runPython([join(PYTHON_DIR, 'torchlet_models.py')])) as Record<
      string,
      { params: number; shapes: Record<string, number[]> }
    >;
    expect(Object.keys(info).sort()).toEqual([...MODEL_NAMES].sort());
    const documented: Record<ModelName, number> = { light: 4738, lightest: 4274, super_light: 4842 };
    for (const name of MODEL_NAMES) {
      const model = newModel(name);
      try {
        const py = info[name];
        expect(py, name).toBeDefined();
        expect(py?.params, name).toBe(documented[name]);
        expect(model.numParams(), name).toBe(documented[name]);
        // Same keys in the same order, same shapes.
        expect(Object.entries(py?.shapes ?? {}), name).toEqual(Object.entries(model.stateShapes()));
      } finally {
        model.dispose();
      }
    }
  });

  it('torchlet-saved weights load strictly into the Python models and give the same log-probabilities', () => {
    const pixels = pixelsOf(expected.pixels);
    const script = [
      'import json, sys, torch',
      'from torchlet_models import MODELS, normalise',
      'req = json.load(sys.stdin)',
      'out = {}',
      'for name, path in req["weights"].items():',
      '    model = MODELS[name]()',
      '    model.load_state_dict(torch.load(path, map_location="cpu"), strict=True)',
      '    model.eval()',
      '    images = torch.tensor(req["pixels"], dtype=torch.uint8).reshape(-1, 1, 28, 28)',
      '    with torch.inference_mode():',
      '        out[name] = model(normalise(images)).reshape(-1).tolist()',
      'print(json.dumps(out))',
    ].join('\n');

    const weights: Record<string, string> = {};
    const torchlet: Record<string, Float32Array> = {};
    for (const [i, name] of MODEL_NAMES.entries()) {
      const model = newModel(name, 100 + i);
      try {
        if (name === 'super_light') model.load(join(FIXTURES, 'super_light_pytorch.pt')); // non-trivial BN stats
        const path = join(tmp, `${name}.pt`);
        model.save(path);
        weights[name] = path;
        torchlet[name] = model.predict(pixels);
      } finally {
        model.dispose();
      }
    }
    const py = JSON.parse(runPython(['-c', script], JSON.stringify({ weights, pixels: Array.from(pixels) }))) as Record<string, number[]>;
    for (const name of MODEL_NAMES) {
      const ours = torchlet[name];
      const theirs = py[name];
      expect(ours, name).toBeDefined();
      expect(theirs, name).toBeDefined();
      if (!ours || !theirs) continue;
      expect(maxAbsDiff(ours, [theirs]), name).toBeLessThan(1e-5);
    }
  });

  // On CPU torchlet runs channels-last with its own fused batch-norm kernel; one SGD step
  // from the same weights on the same batch must land where PyTorch's nn modules land.
  // Widths 6, 8, 12 and 16 cover the kernel's generic and specialised paths; a BN without
  // ReLU and a dropout(0) cover the other fusion patterns. BN statistics and the mean loss do
  // not depend on the order of the batch, so the trainer's shuffle does not matter.
  it.skipIf(missing(mnistDir !== undefined, 'the MNIST test set'))('one training step (train-mode batch norm, fused on CPU) matches PyTorch, parameters and running statistics', async () => {
    const dataDir = mnistDir;
    if (dataDir === undefined) return;
    const spec = defineModel('bn_check', [
      L.conv2d(1, 6, 3), L.batchNorm2d(6), L.relu(),
      L.conv2d(6, 8, 3), L.batchNorm2d(8), L.relu(), L.dropout(0),
      L.maxPool2d(2),
      L.conv2d(8, 12, 3), L.batchNorm2d(12), L.relu(),
      L.conv2d(12, 16, 3), L.batchNorm2d(16), L.relu(),
      L.adaptiveAvgPool2d(1),
      L.conv2d(16, 10, 1), L.flatten(), L.logSoftmax(),
    ]);
    const bytes = gunzipSync(readFileSync(join(dataDir, 't10k-images-idx3-ubyte.gz'))).subarray(16, 16 + 64 * 784);
    const labels = gunzipSync(readFileSync(join(dataDir, 't10k-labels-idx1-ubyte.gz'))).subarray(8, 8 + 64);
    const b = native();
    const model = new b.Model(spec, { seed: 11 });
    const data = new b.Dataset(Uint8Array.from(bytes), Uint8Array.from(labels), [64, 1, 28, 28]);
    const trainer = new b.Trainer(model, { optimizer: { type: 'sgd', lr: 0.1 }, batchSize: 64, seed: 1 });
    try {
      model.save(join(tmp, 'bn_check_before.pt'));
      await trainer.trainEpoch(data, 0);
      model.save(join(tmp, 'bn_check_after.pt'));
    } finally {
      trainer.dispose();
      data.dispose();
      model.dispose();
    }
    const script = [
      'import json, sys, torch',
      'from torch import nn',
      'import torch.nn.functional as F',
      'from torchlet_models import normalise',
      'req = json.load(sys.stdin)',
      'model = nn.Sequential(',
      '    nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),',
      '    nn.Conv2d(6, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.0),',
      '    nn.MaxPool2d(2),',
      '    nn.Conv2d(8, 12, 3), nn.BatchNorm2d(12), nn.ReLU(),',
      '    nn.Conv2d(12, 16, 3), nn.BatchNorm2d(16), nn.ReLU(),',
      '    nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 10, 1), nn.Flatten(), nn.LogSoftmax(1))',
      'model.load_state_dict(torch.load(req["before"]), strict=True)',
      'model.train()',
      'opt = torch.optim.SGD(model.parameters(), lr=0.1)',
      'x = normalise(torch.tensor(req["pixels"], dtype=torch.uint8).reshape(-1, 1, 28, 28))',
      'y = torch.tensor(req["labels"], dtype=torch.int64)',
      'opt.zero_grad(); F.nll_loss(model(x), y).backward(); opt.step()',
      'ours = torch.load(req["after"])',
      'theirs = model.state_dict()',
      'assert list(ours) == list(theirs)',
      'print(json.dumps({k: float((ours[k].double() - theirs[k].double()).abs().max()) for k in theirs}))',
    ].join('\n');
    const diffs = JSON.parse(
      runPython(['-c', script], JSON.stringify({ before: join(tmp, 'bn_check_before.pt'), after: join(tmp, 'bn_check_after.pt'), pixels: Array.from(bytes), labels: Array.from(labels) })),
    ) as Record<string, number>;
    expect(Object.keys(diffs)).toContain('1.running_var');
    expect(Object.keys(diffs)).toContain('12.num_batches_tracked');
    for (const [key, diff] of Object.entries(diffs)) expect(diff, key).toBeLessThan(2e-5);
  });

  // Needs the MNIST test set; CI without a downloaded copy skips this one.
  it.skipIf(missing(mnistDir !== undefined, 'the MNIST test set'))('python/evaluate_weights.py agrees with torchlet on every test-set prediction', async () => {
    const dataDir = mnistDir;
    if (dataDir === undefined) return;
    const idx = (file: string): Uint8Array => {
      const bytes = gunzipSync(readFileSync(join(dataDir, file)));
      const ndim = bytes[3] ?? 0;
      return new Uint8Array(bytes.buffer, bytes.byteOffset + 4 + 4 * ndim, bytes.byteLength - 4 - 4 * ndim);
    };
    const images = idx('t10k-images-idx3-ubyte.gz');
    const labels = idx('t10k-labels-idx1-ubyte.gz');
    const count = labels.length;
    const data = new (native().Dataset)(images, labels, [count, 1, 28, 28]);
    const model = newModel('super_light');
    try {
      const weightsPath = join(FIXTURES, 'super_light_pytorch.pt');
      model.load(weightsPath);
      const stats = await model.evaluate(data, { batchSize: 1000 });
      const sha = createHash('sha256').update(stats.predictions).digest('hex');
      const out = runPython([join(PYTHON_DIR, 'evaluate_weights.py'), '--model', 'super_light', '--weights', weightsPath, '--data', dataDir]);
      const py = JSON.parse(out) as { correct: number; count: number; accuracy: number; predictions_sha256: string };
      expect(py.count).toBe(10_000);
      expect(py.correct).toBe(stats.correct);
      expect(py.accuracy).toBeCloseTo(stats.correct / count, 12);
      expect(py.predictions_sha256).toBe(sha);
    } finally {
      model.dispose();
      data.dispose();
    }
  });
});
