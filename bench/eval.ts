// Figure 3: evaluation at batch 1000, torchlet against PyTorch's evaluation modes.
import { z } from 'zod';
import { Dataset, Model, superLight } from '../src/index.js';
import { alternate, EVAL_BATCH, int, median, SEED, type Options, type PythonWorker, type Side } from './runner.js';


/** PyTorch's evaluation modes, all under inference_mode; the fastest is the comparison.
 * torchlet's evaluate runs its batches as forward passes of at most 256 rows on CPU (128 for
 * models with wide activations, native/model.cc EvalRows), so PyTorch gets both options too. */
export interface EvalVariant {
  layout: 'contiguous' | 'channels_last';
  chunk: number;
}
export const EVAL_VARIANTS: EvalVariant[] = [
  { layout: 'contiguous', chunk: EVAL_BATCH },
  { layout: 'channels_last', chunk: EVAL_BATCH },
  { layout: 'contiguous', chunk: 128 },
  { layout: 'channels_last', chunk: 128 },
  { layout: 'contiguous', chunk: 256 },
  { layout: 'channels_last', chunk: 256 },
];
export const variantName = (v: EvalVariant): string => (v.chunk === EVAL_BATCH ? v.layout : `${v.layout}, passes of ${v.chunk}`);
export const EvalRun = z.object({ seconds: z.number(), count: z.number(), accuracy: z.number(), threads: z.number() });

// ---------------------------------------------------------------------------------------
// Evaluation (figure 3)
// ---------------------------------------------------------------------------------------

export interface EvalData {
  torchlet: number[];
  torchletNativeSeconds: number[];
  /** images/s per EVAL_VARIANTS name. */
  pytorch: Record<string, number[]>;
  best: string;
}

export async function evalFigure(opts: Options, py: PythonWorker, testSet: Dataset): Promise<EvalData> {
  const evalSet = opts.evalImages < testSet.size ? testSet.slice(0, opts.evalImages) : testSet;
  const model = new Model(superLight, { seed: SEED });
  const out: EvalData = { torchlet: [], torchletNativeSeconds: [], pytorch: {}, best: '' };
  try {
    const torchletEval = async (keep: boolean): Promise<number> => {
      const t0 = performance.now();
      const r = await model.evaluate(evalSet, { batchSize: EVAL_BATCH });
      const wall = (performance.now() - t0) / 1000;
      if (keep) out.torchletNativeSeconds.push(r.seconds);
      return r.count / wall;
    };
    const pyEval = async (v: EvalVariant): Promise<number> => {
      const r = await py.request(EvalRun, { cmd: 'eval_run', layout: v.layout, chunk: v.chunk, images: evalSet.size, batch: EVAL_BATCH });
      return r.count / r.seconds;
    };
    const sides: Side[] = [
      { label: 'torchlet', warm: async () => void (await torchletEval(false)), rep: async () => torchletEval(true) },
      ...EVAL_VARIANTS.map((v) => ({ label: `PyTorch ${variantName(v)}`, warm: async () => void (await pyEval(v)), rep: async () => pyEval(v) })),
    ];
    const [t, ...pyResults] = await alternate('eval', opts.shortReps, sides, int, 'images/s');
    out.torchlet = t ?? [];
    EVAL_VARIANTS.forEach((v, i) => (out.pytorch[variantName(v)] = pyResults[i] ?? []));
  } finally {
    model.dispose();
    if (evalSet !== testSet) evalSet.dispose();
  }
  out.best = Object.keys(out.pytorch).reduce((best, name) => (median(out.pytorch[name] ?? []) > median(out.pytorch[best] ?? []) ? name : best));
  return out;
}
