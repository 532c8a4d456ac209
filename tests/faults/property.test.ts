// Property tests for the model-spec validator: any layer list, valid or not, either
// builds a model with exactly countParams(spec) parameters or is refused with an Error
// that names the offending layer's path. Nothing may crash the process.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countParams, Model, type InputSpec, type Layer, type ModelSpec } from '../../src/index.js';
import { convGeometry } from '../../src/spec.js';

const LAYER_PATH = /\b(spec\.)?layers\[\d+\]/;

/** Builds the spec; returns the refusal's message, or undefined when it built correctly. */
function check(spec: ModelSpec): string | undefined {
  let model: Model;
  try {
    model = new Model(spec);
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message, JSON.stringify(spec)).toMatch(LAYER_PATH);
    return message;
  }
  try {
    expect(model.numParams(), JSON.stringify(spec)).toBe(countParams(spec));
  } finally {
    model.dispose();
  }
  return undefined;
}

const input: fc.Arbitrary<InputSpec> = fc.record({
  channels: fc.integer({ min: 1, max: 3 }),
  height: fc.integer({ min: 4, max: 12 }),
  width: fc.integer({ min: 4, max: 12 }),
});

/** A small count, sometimes one the validator must refuse (0, negative, fractional, a string). */
const size = (max: number, badRate = 0.05): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: Math.round((1 - badRate) * 100), arbitrary: fc.integer({ min: 1, max }) },
    { weight: Math.max(1, Math.round(badRate * 100)), arbitrary: fc.constantFrom(0, -1, 2.5, '3', null, Number.NaN, Number.POSITIVE_INFINITY) },
  );

/** Any layer at all: every type with random (mostly plausible) fields, plus junk. */
const anyLayer: fc.Arbitrary<unknown> = fc.letrec<{ layer: unknown }>((tie) => ({
  layer: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record(
      {
        type: fc.constant('conv2d'),
        in: size(4),
        out: size(4),
        kernel: fc.oneof(size(5), fc.tuple(size(5), size(5)), fc.constantFrom([3], [1, 2, 3], [])),
        stride: fc.oneof(size(2), fc.tuple(size(2), size(2))),
        padding: fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constant(-1), fc.tuple(fc.integer({ min: -1, max: 2 }), fc.integer({ min: 0, max: 2 }))),
        dilation: fc.oneof(size(2), fc.tuple(size(2), size(2))),
        bias: fc.oneof(fc.boolean(), fc.constant('yes')),
      },
      { requiredKeys: ['type', 'in', 'out', 'kernel'] },
    ),
    fc.record({ type: fc.constant('batchnorm2d'), features: size(4), eps: fc.double({ min: 1e-6, max: 1e-3, noNaN: true }) }, { requiredKeys: ['type', 'features'] }),
    fc.record({ type: fc.constantFrom('dropout', 'dropout2d'), p: fc.oneof(fc.double({ min: 0, max: 0.9, noNaN: true }), fc.constantFrom(1, 1.5, -0.1, 'half')) }),
    fc.record(
      {
        type: fc.constantFrom('maxpool2d', 'avgpool2d'),
        kernel: fc.oneof(size(4), fc.tuple(size(4), size(4))),
        stride: fc.oneof(size(3), fc.tuple(size(3), size(3))),
        padding: fc.oneof(fc.integer({ min: 0, max: 2 }), fc.tuple(fc.integer({ min: -1, max: 2 }), fc.integer({ min: 0, max: 2 }))),
      },
      { requiredKeys: ['type', 'kernel'] },
    ),
    fc.record({ type: fc.constant('adaptiveavgpool2d'), output: fc.oneof(size(3), fc.tuple(size(3), size(3))) }),
    fc.record({ type: fc.constant('linear'), in: size(64), out: size(10), bias: fc.boolean() }, { requiredKeys: ['type', 'in', 'out'] }),
    fc.constantFrom({ type: 'relu' }, { type: 'flatten' }, { type: 'logsoftmax' }),
    fc.record({ type: fc.constant('sequential'), layers: fc.array(tie('layer'), { maxLength: 3 }) }),
    fc.record({ type: fc.constant('concat'), branches: fc.array(tie('layer'), { maxLength: 3 }) }),
    fc.constantFrom({ type: 'conv3d' }, { type: 7 }, {}, null, 42, 'relu', [], { type: 'sequential' }, { type: 'concat', branches: 'x' }),
  ),
})).layer;

/**
 * Layer lists built to chain (channels and spatial sizes tracked), so that a good share
 * of them are valid; the validator must accept exactly those it can run.
 */
function chained(inp: InputSpec): fc.Arbitrary<Layer[]> {
  type Step = 'conv' | 'bn' | 'relu' | 'dropout' | 'pool' | 'concat' | 'seq';
  return fc
    .record({
      steps: fc.array(fc.constantFrom<Step>('conv', 'bn', 'relu', 'dropout', 'pool', 'concat', 'seq'), { maxLength: 6 }),
      picks: fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 40, maxLength: 40 }),
      head: fc.constantFrom('gap', 'flat', 'conv-out'),
      classes: fc.integer({ min: 2, max: 10 }),
    })
    .map(({ steps, picks, head, classes }) => {
      let k = 0;
      const pick = (lo: number, hi: number): number => lo + ((picks[k++ % picks.length] ?? 0) % (hi - lo + 1));
      let c = inp.channels;
      let h = inp.height;
      let w = inp.width;
      const out: Layer[] = [];
      const conv = (): Layer => {
        const padding = pick(0, 1);
        const kernel = pick(1, Math.min(3, Math.min(h, w) + 2 * padding));
        if (pick(0, 2) > 0) return { type: 'conv2d', in: c, out: pick(1, 4), kernel, padding };
        // Non-square: [height, width] pairs (3x1 and 1x3 factorized convolutions).
        const padW = pick(0, 1);
        return { type: 'conv2d', in: c, out: pick(1, 4), kernel: [kernel, pick(1, Math.min(3, w + 2 * padW))], padding: [padding, padW] };
      };
      const apply = (l: Layer): void => {
        if (l.type === 'conv2d') {
          const { kernel, padding } = convGeometry(l, 'chained');
          h = h + 2 * padding[0] - kernel[0] + 1;
          w = w + 2 * padding[1] - kernel[1] + 1;
          c = l.out;
        }
      };
      for (const step of steps) {
        if (step === 'conv') {
          const l = conv();
          apply(l);
          out.push(l);
        } else if (step === 'bn') out.push({ type: 'batchnorm2d', features: c });
        else if (step === 'relu') out.push({ type: 'relu' });
        else if (step === 'dropout') out.push({ type: pick(0, 1) ? 'dropout' : 'dropout2d', p: pick(0, 5) / 10 });
        else if (step === 'pool' && Math.min(h, w) >= 2) {
          out.push({ type: pick(0, 1) ? 'maxpool2d' : 'avgpool2d', kernel: 2 });
          h = Math.floor(h / 2);
          w = Math.floor(w / 2);
        } else if (step === 'concat') {
          // Two convolutions with the same kernel and padding: equal spatial sizes.
          const a = conv();
          const b: Layer = { ...a, out: pick(1, 3) } as Layer;
          const total = (a as { out: number }).out + (b as { out: number }).out;
          apply(a);
          c = total;
          out.push({ type: 'concat', branches: [a, { type: 'sequential', layers: [b, { type: 'relu' }] }] });
        } else if (step === 'seq') {
          const l = conv();
          out.push({ type: 'sequential', layers: [l, { type: 'batchnorm2d', features: l.type === 'conv2d' ? l.out : 1 }] });
          apply(l);
        }
      }
      if (head === 'gap') out.push({ type: 'adaptiveavgpool2d', output: 1 }, { type: 'flatten' }, { type: 'linear', in: c, out: classes });
      else if (head === 'flat') out.push({ type: 'flatten' }, { type: 'linear', in: c * h * w, out: classes });
      else out.push({ type: 'conv2d', in: c, out: classes, kernel: [h, w] }, { type: 'adaptiveavgpool2d', output: 1 }, { type: 'flatten' });
      out.push({ type: 'logsoftmax' });
      return out;
    });
}

/** Replaces one number somewhere in the spec's layers with a wrong one. */
function mutate(layers: Layer[], at: number, to: unknown): Layer[] {
  const copy = structuredClone(layers) as unknown[];
  const slots: { obj: Record<string, unknown>; key: string }[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [key, x] of Object.entries(v)) {
        if (typeof x === 'number') slots.push({ obj: v as Record<string, unknown>, key });
        else walk(x);
      }
    }
  };
  walk(copy);
  const slot = slots[at % Math.max(1, slots.length)];
  if (slot) slot.obj[slot.key] = to;
  return copy as Layer[];
}

describe('model-spec validator properties', () => {
  it('chained layer lists build with numParams === countParams (or are refused naming a layer)', () => {
    const runs = 300;
    let built = 0;
    fc.assert(
      fc.property(
        input.chain((inp) => fc.tuple(fc.constant(inp), chained(inp))),
        ([inp, layers]) => {
          if (check({ name: 'chained', input: inp, layers }) === undefined) built++;
        },
      ),
      { numRuns: runs, seed: 42 },
    );
    console.log(`chained specs: ${built}/${runs} built`);
    expect(built).toBeGreaterThan(runs * 0.9);
  });

  it('a chained list with one number made wrong is refused naming a layer, or still builds correctly', () => {
    let built = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        input.chain((inp) => fc.tuple(fc.constant(inp), chained(inp))),
        fc.nat(),
        fc.constantFrom(0, -3, 1.5, 1000, 'two', null, Number.NaN, 37),
        ([inp, layers], at, to) => {
          if (check({ name: 'mutated', input: inp, layers: mutate(layers, at, to) }) === undefined) built++;
          else refused++;
        },
      ),
      { numRuns: 400, seed: 7 },
    );
    console.log(`mutated specs: ${built} built, ${refused} refused`);
    expect(refused).toBeGreaterThan(200);
  });

  it('arbitrary layer lists never crash: they build correctly or are refused naming a layer', () => {
    let built = 0;
    let refused = 0;
    fc.assert(
      fc.property(input, fc.array(anyLayer, { minLength: 1, maxLength: 6 }), (inp, layers) => {
        if (check({ name: 'random', input: inp, layers: layers as Layer[] }) === undefined) built++;
        else refused++;
      }),
      { numRuns: 600, seed: 1 },
    );
    console.log(`arbitrary specs: ${built} built, ${refused} refused`);
    expect(refused).toBeGreaterThan(0);
  });
});
