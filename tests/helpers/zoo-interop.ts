// Zoo models against their PyTorch twins (python/zoo.py, built from torch and
// torchvision), shared by tests/zoo.test.ts, tests/faults/zoo-steps.test.ts and
// tests/tiny.test.ts (the tiny family, whose twins python/zoo.py takes from
// python/tiny_models.py): parameter
// counts and state_dict keys, weights both ways with equal logits on real MNIST images, and
// one SGD step from the same weights (for the models in `steps`).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native, type NativeModel } from '../../src/native.js';
import { countParams, type ModelSpec } from '../../src/spec.js';
import { withoutDropout, zoo, type ZooName } from '../../src/zoo/index.js';
import { missing } from './requires.js';
import { mnistDir, mnistTest, pythonHas, runPythonJson } from './python.js';

const SCRIPT = 'tests/helpers/zoo_interop.py';
const IMAGES = 4;
const BATCH = Number(process.env.ZOO_BATCH ?? 8);
// For looking into one model's step at other starting weights (the README's note on the
// channels-last step): ZOO_ONLY=resnet34 ZOO_STEP_SEED=5 runs that model alone from seed 3005 + its place.
const ONLY = process.env.ZOO_ONLY?.split(',');
const STEP_SEED = Number(process.env.ZOO_STEP_SEED ?? 0);
const LR = 0.05;
// Logits are compared relative to the largest logit's magnitude: float32 convolutions
// and matmuls sum in a different order on each side.
const LOGIT_TOLERANCE = 1e-4;
// One step's parameters and running statistics, relative to each tensor's largest magnitude
// (at least 1), from the exact (float64) step: within this, or within 3x PyTorch's own float32
// distance (NCHW or channels-last, the larger) where a deep network at batch 8 amplifies
// rounding more than that.
const STEP_TOLERANCE = 1e-4;

/** The spec without its final log-softmax: the same state, but raw logits out, as PyTorch's models give. */
function logitsOf(spec: ModelSpec): ModelSpec {
  const last = spec.layers[spec.layers.length - 1];
  expect(last?.type).toBe('logsoftmax');
  return { ...spec, layers: spec.layers.slice(0, -1) };
}

function maxRelDiff(ours: Float32Array, theirs: number[]): number {
  expect(ours).toHaveLength(theirs.length);
  const scale = Math.max(1, ...theirs.map(Math.abs));
  return theirs.reduce((m, v, i) => Math.max(m, Math.abs((ours[i] ?? Number.NaN) - v) / scale), 0);
}

/** Builders by name, each with a twin of the same name in python/zoo.py. */
export type Registry = Readonly<Record<string, () => ModelSpec>>;

/** The interop tests for `all` of `registry` (or those of them in ZOO_ONLY); the one-step check only for those also in `steps`. */
export function zooInteropSuite<N extends string = ZooName>(all: N[], steps: ReadonlySet<N>, registry: Registry = zoo, title = 'zoo models'): void {
  const names = ONLY === undefined ? all : all.filter((n) => ONLY.includes(n));
  const skip = missing(pythonHas('torchvision'), '/usr/bin/python3 with torch and torchvision') || missing(mnistDir !== undefined, 'the MNIST test set');
  const stepped = names.filter((n) => steps.has(n));
  // Seeds by the model's place in the registry, so that they do not depend on which models run.
  const seed = (name: N): number => Object.keys(registry).indexOf(name);
  const build = (name: N): ModelSpec => {
    const builder = registry[name];
    if (builder === undefined) throw new Error(`no model '${name}' in the registry`);
    return builder();
  };
  describe.skipIf(skip)(`${title} vs their PyTorch twins`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'torchlet-zoo-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const images = mnistTest(IMAGES);
    const batch = mnistTest(BATCH, 100);
    const b = native();
    let described: Record<string, { params: number; shapes: Record<string, number[]> }>;
    let exported: Record<string, number[]>;
    let checked: Record<string, { logits: number[]; step?: { torchlet: [number, string]; nchw: [number, string]; channels_last: [number, string] } }>;
    const torchletLogits: Partial<Record<N, Float32Array>> = {};

    beforeAll(async () => {
      described = runPythonJson([SCRIPT], { action: 'describe' });
      exported = runPythonJson([SCRIPT], { action: 'export', dir, models: names, pixels: Array.from(images.pixels) });
      // torchlet's side: its own weights and logits, and one training step from them.
      for (const name of names) {
        const model = new b.Model(logitsOf(build(name)), { seed: 2000 + seed(name) });
        try {
          model.save(join(dir, `${name}-torchlet.pt`));
          torchletLogits[name] = model.predict(images.pixels);
        } finally {
          model.dispose();
        }
        if (!steps.has(name)) continue;
        const stepModel = new b.Model(withoutDropout(build(name)), { seed: 3000 + STEP_SEED + seed(name) });
        const data = new b.Dataset(batch.pixels, batch.labels, [BATCH, 1, 28, 28]);
        const trainer = new b.Trainer(stepModel, { optimizer: { type: 'sgd', lr: LR }, batchSize: BATCH, seed: 1 });
        try {
          stepModel.save(join(dir, `${name}-before.pt`));
          await trainer.trainEpoch(data, 0);
          stepModel.save(join(dir, `${name}-after.pt`));
        } finally {
          trainer.dispose();
          data.dispose();
          stepModel.dispose();
        }
      }
      checked = runPythonJson([SCRIPT], {
        action: 'check',
        dir,
        models: names,
        steps: stepped,
        pixels: Array.from(images.pixels),
        batch: Array.from(batch.pixels),
        labels: Array.from(batch.labels),
        lr: LR,
      });
    }, 600_000);

    it.each(names)('%s: parameter count (spec, native, PyTorch) and state_dict keys and shapes in order', (name) => {
      const spec = build(name);
      const model: NativeModel = new b.Model(spec, { seed: 0 });
      try {
        const py = described[name];
        expect(py, name).toBeDefined();
        expect(model.numParams()).toBe(py?.params);
        expect(countParams(spec)).toBe(py?.params);
        expect(Object.entries(model.stateShapes())).toEqual(Object.entries(py?.shapes ?? {}));
      } finally {
        model.dispose();
      }
    });


    it.each(names)('%s: PyTorch weights load strictly and give PyTorch\'s logits on MNIST images', (name) => {
      const model = new b.Model(logitsOf(build(name)), { seed: 1 });
      try {
        model.load(join(dir, `${name}-pytorch.pt`));
        const theirs = exported[name] ?? [];
        expect(theirs).toHaveLength(IMAGES * 10);
        expect(maxRelDiff(model.predict(images.pixels), theirs)).toBeLessThan(LOGIT_TOLERANCE);
      } finally {
        model.dispose();
      }
    });

    it.each(names)('%s: torchlet weights load strictly in PyTorch and give torchlet\'s logits', (name) => {
      const ours = torchletLogits[name];
      expect(ours).toBeDefined();
      expect(maxRelDiff(ours ?? new Float32Array(), checked[name]?.logits ?? [])).toBeLessThan(LOGIT_TOLERANCE);
    });

    it.skipIf(stepped.length === 0).each(stepped)('%s: one SGD step in training mode lands on PyTorch\'s weights and running statistics', (name) => {
      const step = checked[name]?.step;
      expect(step).toBeDefined();
      const [ours, where] = step?.torchlet ?? [Number.NaN, ''];
      const [nchw] = step?.nchw ?? [Number.NaN];
      const [channelsLast] = step?.channels_last ?? [Number.NaN];
      expect(ours, `worst tensor ${where}; PyTorch float32 is ${nchw} (NCHW) and ${channelsLast} (channels-last) from the exact step`).toBeLessThan(Math.max(STEP_TOLERANCE, 3 * Math.max(nchw, channelsLast)));
    });
  });
}
