// Figures 1, 2 and 6: the train step without and with the reference augmentation,
// torchlet against every PyTorch setup (bench/pytorch_bench.py), and the JS/N-API
// boundary's share of trainEpoch.
import { z } from 'zod';
import { createTrainer, Dataset, Model, resolveRecipe, superLight, type Layer, type ModelSpec } from '../src/index.js';
import { convGeometry, poolGeometry } from '../src/spec.js';
import { alternate, BATCH, int, SEED, stats, type Options, type PythonWorker, type Side, type Stats } from './runner.js';

export const DOCUMENTED_FORWARD_MACS = 342_576;
export const TrainInit = z.object({ steps_per_epoch: z.number() });
export const TrainRun = z.object({ seconds: z.number(), cpu_seconds: z.number(), steps: z.number(), samples: z.number(), threads: z.number() });

// ---------------------------------------------------------------------------------------
// Model arithmetic
// ---------------------------------------------------------------------------------------

/** Multiply-adds of one forward pass, walking the spec (convolutions and linear layers). */
export function forwardMacs(spec: ModelSpec): number {
  let [c, h, w] = [spec.input.channels, spec.input.height, spec.input.width];
  const walk = (layers: Layer[], path: string): number => {
    let macs = 0;
    for (const [i, l] of layers.entries()) {
      switch (l.type) {
        case 'conv2d': {
          const { kernel, stride, padding, dilation } = convGeometry(l, `${path}[${i}]`);
          h = Math.floor((h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) / stride[0]) + 1;
          w = Math.floor((w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) / stride[1]) + 1;
          macs += ((l.out * l.in) / (l.groups ?? 1)) * kernel[0] * kernel[1] * h * w;
          c = l.out;
          break;
        }
        case 'maxpool2d':
        case 'avgpool2d': {
          const { kernel, stride, padding } = poolGeometry(l, `${path}[${i}]`);
          h = Math.floor((h + 2 * padding[0] - kernel[0]) / stride[0]) + 1;
          w = Math.floor((w + 2 * padding[1] - kernel[1]) / stride[1]) + 1;
          break;
        }
        case 'adaptiveavgpool2d':
          [h, w] = typeof l.output === 'number' ? [l.output, l.output] : l.output;
          break;
        case 'flatten':
          [c, h, w] = [c * h * w, 1, 1];
          break;
        case 'linear':
          macs += l.in * l.out;
          [c, h, w] = [l.out, 1, 1];
          break;
        case 'sequential':
          macs += walk(l.layers, `${path}[${i}].layers`);
          break;
        case 'residual': {
          // The shortcut sees the block's input, and the sum has the main path's shape.
          const input = [c, h, w] as const;
          macs += walk(l.layers, `${path}[${i}].layers`);
          if (l.shortcut) {
            const output = [c, h, w] as const;
            [c, h, w] = input;
            macs += walk([l.shortcut], `${path}[${i}].shortcut`);
            [c, h, w] = output;
          }
          break;
        }
        // Layers with multiply-adds this walk does not model, or that reshape the tensor in
        // ways it does not follow: an error, not a silent undercount.
        case 'concat':
        case 'scale':
        case 'reshape':
        case 'transpose':
        case 'select':
        case 'token':
        case 'positionembedding':
        case 'multiheadattention':
        case 'transformerencoderlayer':
          throw new Error(`forwardMacs: ${l.type} at ${path}[${i}] is not supported`);
        default:
          break;
      }
    }
    return macs;
  };
  return walk(spec.layers, 'spec.layers');
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

export interface TorchletTrainRep {
  wall: number;
  native: number;
  cpu: number;
  samples: number;
}

export const noProgress = (): void => undefined;

export async function torchletEpoch(trainer: ReturnType<typeof createTrainer>, data: Dataset, epoch: number): Promise<TorchletTrainRep> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // The same call train() makes, progress callback included.
  const s = await trainer.trainEpoch(data.handle, epoch, noProgress);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { wall, native: s.seconds, cpu: (cpu.user + cpu.system) / 1e6, samples: s.samples };
}


export type Layout = 'contiguous' | 'channels_last';

/** One PyTorch training setup (see bench/pytorch_bench.py's train_init). */
export interface PyTrainVariant {
  id: string;
  kind: 'memory' | 'memory_aug' | 'reference';
  layout: Layout;
}

export interface TrainFigureData {
  torchlet: TorchletTrainRep[];
  /** Repetitions per PyTrainVariant id. */
  pytorch: Record<string, z.infer<typeof TrainRun>[]>;
}

export async function trainFigures(opts: Options, py: PythonWorker, trainSet: Dataset, aug: boolean, variants: PyTrainVariant[]): Promise<TrainFigureData> {
  const reps = opts.trainReps;
  const data = trainSet.size > opts.trainImages ? trainSet.slice(0, opts.trainImages) : trainSet;
  const warmData = trainSet.slice(0, opts.warmImages);
  const warmSteps = Math.ceil(opts.warmImages / BATCH);
  const model = new Model(superLight, { seed: SEED });
  // The reference recipe (AdamW + OneCycleLR), its schedule long enough for warm-up + reps.
  const trainer = createTrainer(model, resolveRecipe({ epochs: reps + 1 }), aug, data.size);
  const out: TrainFigureData = { torchlet: [], pytorch: {} };
  try {
    for (const v of variants) {
      await py.request(TrainInit, { cmd: 'train_init', id: v.id, kind: v.kind, layout: v.layout, images: data.size, epochs: reps + 1 });
      out.pytorch[v.id] = [];
    }
    const sides: Side[] = [
      {
        label: 'torchlet',
        warm: async () => void (await torchletEpoch(trainer, warmData, 0)),
        rep: async (i) => {
          const r = await torchletEpoch(trainer, data, i + 1);
          out.torchlet.push(r);
          return r.samples / r.wall;
        },
      },
      ...variants.map(
        (v): Side => ({
          label: `PyTorch ${v.id}`,
          warm: async () => void (await py.request(TrainRun, { cmd: 'train_run', id: v.id, steps: warmSteps })),
          rep: async () => {
            const r = await py.request(TrainRun, { cmd: 'train_run', id: v.id });
            out.pytorch[v.id]?.push(r);
            return r.samples / r.seconds;
          },
        }),
      ),
    ];
    await alternate(aug ? 'train+aug' : 'train', reps, sides, int, 'images/s');
  } finally {
    trainer.dispose();
    model.dispose();
    if (data !== trainSet) data.dispose();
    warmData.dispose();
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

/** PyTorch's training setups: the figure compares torchlet with the fastest of each group. */
export const NOAUG_VARIANTS: PyTrainVariant[] = [
  { id: 'memory', kind: 'memory', layout: 'contiguous' },
  { id: 'memory-channels_last', kind: 'memory', layout: 'channels_last' },
];
export const REFERENCE_VARIANT: PyTrainVariant = { id: 'reference', kind: 'reference', layout: 'contiguous' };
export const BATCHED_AUG_VARIANTS: PyTrainVariant[] = [
  { id: 'batched_aug', kind: 'memory_aug', layout: 'contiguous' },
  { id: 'batched_aug-channels_last', kind: 'memory_aug', layout: 'channels_last' },
];

export type TrainRunResult = z.infer<typeof TrainRun>;
export const perSecond = (reps: TrainRunResult[]): Stats | null => (reps.length ? stats(reps.map((r) => r.samples / r.seconds)) : null);

/** The variant (of `variants`) with the highest median images/s. */
export function fastest(data: TrainFigureData, variants: PyTrainVariant[]): { variant: PyTrainVariant; stats: Stats } | null {
  let best: { variant: PyTrainVariant; stats: Stats } | null = null;
  for (const variant of variants) {
    const s = perSecond(data.pytorch[variant.id] ?? []);
    if (s && (!best || s.median > best.stats.median)) best = { variant, stats: s };
  }
  return best;
}
