// The zoo benchmark (issue 12): training and evaluation speed of the zoo's models against
// Debian's PyTorch on the same machine and threads, in one run. Training: images/s at batch
// 64 (SGD with momentum); evaluation: images/s at batch 256. Targets: training at least 1.2x
// PyTorch for the convolutional models and 1.0x for the ViT, evaluation at least 1.1x for
// every model. Medians of repetitions; the two sides run back to back per model. `npm run
// bench` runs it after the ONNX benchmark.
//
//   npm run bench:zoo                    # 3 repetitions; bench/zoo-results.json, README table
//   npm run bench:zoo -- --quick         # 1 repetition, fewer steps (smoke run); README untouched
//   npm run bench:zoo -- --models vit,resnet18 --no-readme
//   npm run bench:zoo -- --ablate         # also torchlet with each of its CPU paths switched off
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { Dataset, Model, native, setCpuKernels, setThreads, zoo, DEFAULT_CPU_KERNELS, type CpuKernels, type ZooName } from '../src/index.js';
import { z } from 'zod';
import { BENCH, benchArgs, cpuInfo, fixed, loadedBlas, int, log, median, positiveInt, PythonWorker, threadsText, turnOrder, updateReadme } from './runner.js';

const README_START = '<!-- bench:zoo:start -->';
const README_END = '<!-- bench:zoo:end -->';
const ABLATION_START = '<!-- bench:zoo-ablation:start -->';
const ABLATION_END = '<!-- bench:zoo-ablation:end -->';
/** --ablate: each of torchlet's CPU paths switched off in turn (src/runtime.ts setCpuKernels). */
const ABLATIONS: { label: string; off: Partial<CpuKernels> }[] = [
  { label: 'no kernel crop', off: { cropConvs: false } },
  { label: 'no fused batch norm', off: { fusedBatchNorm: false } },
  { label: 'no channels-last (so no fused batch norm)', off: { channelsLast: false } },
  { label: 'no inference plan (evaluation)', off: { inferencePlan: false } },
  { label: 'no fused attention', off: { fusedAttention: false } },
  { label: 'no fused SGD step', off: { fusedOptimizer: false } },
  { label: 'no oneDNN sgemm (OpenBLAS)', off: { onednnGemm: false } },
];
const MODELS: ZooName[] = ['simple_conv_net', 'parallel_cnn', 'vit', 'resnet18', 'mobilenet_v2'];
const CONVOLUTIONAL = new Set<ZooName>(['simple_conv_net', 'parallel_cnn', 'resnet18', 'mobilenet_v2']);
const TRAIN_BATCH = 64;
const EVAL_BATCH = 256;

export interface ZooBenchOptions {
  quick: boolean;
  ablate: boolean;
  models: ZooName[];
  threads: number;
  reps: number;
  trainSteps: number;
  evalImages: number;
  python: string;
  out: string;
  readme: string | undefined;
}

interface Figure {
  torchlet: number;
  pytorch: number;
  target: number;
}

interface Row {
  model: ZooName;
  train: Figure;
  eval: Figure;
  samples: { torchlet: Samples; pytorch: Samples };
  /** --ablate: torchlet's medians with one path off, by ABLATIONS label. */
  ablation?: Record<string, { train: number; eval: number; samples: Samples }>;
}

interface Samples {
  train: number[];
  eval: number[];
}

function images(n: number, seed: number): Dataset {
  let s = seed;
  const pixels = new Uint8Array(n * 784).map(() => ((s = (s * 1103515245 + 12345) >>> 0) >>> 24) & 0xff);
  const labels = new Uint8Array(n).map((_, i) => i % 10);
  return Dataset.fromArrays(pixels, labels, [n, 1, 28, 28]);
}

/** torchlet's side of one model: one repetition of training and of evaluation per call. */
class TorchletSide {
  private readonly model: Model;
  private readonly trainSet: Dataset;
  private readonly evalSet: Dataset;
  private readonly trainer;
  private epoch = 0;

  constructor(name: ZooName, opts: ZooBenchOptions) {
    this.trainSet = images(TRAIN_BATCH * opts.trainSteps, 1);
    this.evalSet = images(opts.evalImages, 2);
    this.model = new Model(zoo[name](), { seed: 0 });
    this.trainer = new (native().Trainer)(this.model.handle, { optimizer: { type: 'sgd', lr: 0.01, momentum: 0.9 }, batchSize: TRAIN_BATCH, seed: 1 });
  }

  /** Two training steps and one evaluation batch, with the kernels as they are now. */
  async warm(): Promise<void> {
    const warm = this.trainSet.slice(0, TRAIN_BATCH * 2);
    const evalWarm = this.evalSet.slice(0, EVAL_BATCH);
    try {
      await this.trainer.trainEpoch(warm.handle, this.epoch++);
      await this.model.evaluate(evalWarm, { batchSize: EVAL_BATCH });
    } finally {
      warm.dispose();
      evalWarm.dispose();
    }
  }

  async rep(): Promise<{ train: number; eval: number }> {
    const t0 = performance.now();
    const e = await this.trainer.trainEpoch(this.trainSet.handle, this.epoch++);
    const train = e.samples / ((performance.now() - t0) / 1000);
    const t1 = performance.now();
    const ev = await this.model.evaluate(this.evalSet, { batchSize: EVAL_BATCH });
    return { train, eval: ev.count / ((performance.now() - t1) / 1000) };
  }

  dispose(): void {
    this.trainer.dispose();
    this.model.dispose();
    this.trainSet.dispose();
    this.evalSet.dispose();
  }
}

/**
 * Every side of one model in turn, repetition by repetition (torchlet with all its CPU paths
 * on, each --ablate variant, and PyTorch; the order changes each repetition, runner.ts
 * turnOrder), so that the machine's drift over minutes falls on every side alike.
 */
async function measure(name: ZooName, opts: ZooBenchOptions, peer: PythonWorker): Promise<{ variants: Samples[]; pytorch: Samples }> {
  const variants: Partial<CpuKernels>[] = [{}, ...(opts.ablate ? ABLATIONS.map((a) => a.off) : [])];
  const ours = new TorchletSide(name, opts);
  const out = { variants: variants.map((): Samples => ({ train: [], eval: [] })), pytorch: { train: [], eval: [] } as Samples };
  try {
    await peer.request(z.unknown(), { cmd: 'load', model: name, train_batch: TRAIN_BATCH, train_steps: opts.trainSteps, eval_batch: EVAL_BATCH, eval_images: opts.evalImages });
    for (const v of variants) {
      setCpuKernels({ ...DEFAULT_CPU_KERNELS, ...v });
      await ours.warm();
    }
    for (let r = 0; r < opts.reps; r++) {
      // Sides 0..n-1 are torchlet's variants, side n is PyTorch.
      for (const i of turnOrder(variants.length + 1, r)) {
        const v = variants[i];
        if (v === undefined) {
          setCpuKernels(DEFAULT_CPU_KERNELS);
          out.pytorch.train.push(await peer.request(z.number(), { cmd: 'train' }));
          out.pytorch.eval.push(await peer.request(z.number(), { cmd: 'eval' }));
          continue;
        }
        setCpuKernels({ ...DEFAULT_CPU_KERNELS, ...v });
        const { train, eval: ev } = await ours.rep();
        out.variants[i]?.train.push(train);
        out.variants[i]?.eval.push(ev);
      }
    }
  } finally {
    setCpuKernels(DEFAULT_CPU_KERNELS);
    ours.dispose();
  }
  return out;
}

const ratioOf = (f: Figure): number => f.torchlet / f.pytorch;
const verdict = (f: Figure): string => `${fixed(2)(ratioOf(f))}x (${f.target}x: ${ratioOf(f) >= f.target ? 'met' : 'MISSED'})`;

function markdown(rows: Row[], opts: ZooBenchOptions, load: number[]): string {
  const cpu = cpuInfo();
  const lines = [
    `_Measured by \`npm run bench:zoo\` on ${new Date().toISOString().slice(0, 10)}: ${cpu.model}, ${availableParallelism()} cores, ${threadsText(opts.threads)} and ${loadedBlas()} on both sides` +
      `${native().oneDnnSgemm ? " (torchlet's fully connected layers of 2^20 multiply-adds or more through oneDNN's sgemm instead)" : ''}, ` +
      `load average ${fixed(2)(load[0] ?? 0)} at the start; median of ${opts.reps} repetitions taken in turn with PyTorch's, each ${opts.trainSteps} training steps at batch ${TRAIN_BATCH} and ${int(opts.evalImages)} evaluation images at batch ${EVAL_BATCH}. ` +
      `Target in brackets. Every repetition is in [bench/zoo-results.json](bench/zoo-results.json)._`,
    '',
    '| model | train img/s: torchlet / PyTorch | ratio (target) | eval img/s: torchlet / PyTorch | ratio (target) |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(`| \`${r.model}\` | ${int(r.train.torchlet)} / ${int(r.train.pytorch)} | ${verdict(r.train)} | ${int(r.eval.torchlet)} / ${int(r.eval.pytorch)} | ${verdict(r.eval)} |`);
  }
  return lines.join('\n');
}

/** torchlet's speed with each path off, as a fraction of its speed with all on, from the same run. */
function ablationMarkdown(rows: Row[]): string {
  const share = (v: number, all: number): string => `${int(v)} (${fixed(2)(v / all)}x)`;
  const lines = [
    '_From the same run (`--ablate`): torchlet\'s images/s with one of its CPU paths switched off, and in brackets that as a fraction of its speed with all on (the table above); below 1.00x the path helps._',
    '',
    `| model | all on: train / eval | ${ABLATIONS.map((a) => `${a.label}: train / eval`).join(' | ')} |`,
    `|---|---:|${ABLATIONS.map(() => '---:|').join('')}`,
  ];
  for (const r of rows) {
    const cells = ABLATIONS.map(({ label }) => {
      const a = r.ablation?.[label];
      return a === undefined ? 'not run' : `${share(a.train, r.train.torchlet)} / ${share(a.eval, r.eval.torchlet)}`;
    });
    lines.push(`| \`${r.model}\` | ${int(r.train.torchlet)} / ${int(r.eval.torchlet)} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

async function measureRow(name: ZooName, opts: ZooBenchOptions, peer: PythonWorker): Promise<Row> {
  const { variants, pytorch } = await measure(name, opts, peer);
  const ours = variants[0] ?? { train: [], eval: [] };
  const row: Row = {
    model: name,
    train: { torchlet: median(ours.train), pytorch: median(pytorch.train), target: CONVOLUTIONAL.has(name) ? 1.2 : 1.0 },
    eval: { torchlet: median(ours.eval), pytorch: median(pytorch.eval), target: 1.1 },
    samples: { torchlet: ours, pytorch },
  };
  const line = (f: Figure): string => `${int(f.torchlet)} vs ${int(f.pytorch)} img/s = ${verdict(f)}`;
  log(`  ${name.padEnd(16)} train ${line(row.train)} | eval ${line(row.eval)}`);
  if (!opts.ablate) return row;
  row.ablation = {};
  for (const [i, { label }] of ABLATIONS.entries()) {
    const samples = variants[i + 1] ?? { train: [], eval: [] };
    row.ablation[label] = { train: median(samples.train), eval: median(samples.eval), samples };
    log(`  ${''.padEnd(16)} ${label}: train ${int(median(samples.train))}, eval ${int(median(samples.eval))} img/s`);
  }
  return row;
}

export async function zooBenchmark(opts: ZooBenchOptions): Promise<Row[]> {
  setThreads(opts.threads);
  const load = loadavg();
  log(`zoo benchmark: ${threadsText(opts.threads)}, train batch ${TRAIN_BATCH}, eval batch ${EVAL_BATCH}, ${opts.reps} repetition(s), load ${fixed(2)(load[0] ?? 0)}`);
  const rows: Row[] = [];
  const peer = new PythonWorker(opts.python, [join(BENCH, 'zoo_peer.py'), '--threads', String(opts.threads)]);
  try {
    for (const name of opts.models) rows.push(await measureRow(name, opts, peer));
  } finally {
    await peer.close();
  }
  writeFileSync(opts.out, `${JSON.stringify({ date: new Date().toISOString(), mode: opts.quick ? 'quick' : 'full', threads: opts.threads, blas: loadedBlas(), loadavg: load, trainSteps: opts.trainSteps, evalImages: opts.evalImages, reps: opts.reps, rows }, null, 2)}\n`);
  log(`wrote ${opts.out}`);
  if (opts.readme !== undefined && updateReadme(opts.readme, markdown(rows, opts, load), README_START, README_END)) log(`updated the zoo speed table in ${opts.readme}`);
  if (opts.ablate && opts.readme !== undefined && updateReadme(opts.readme, ablationMarkdown(rows), ABLATION_START, ABLATION_END)) log(`updated the ablation table in ${opts.readme}`);
  return rows;
}

export function parseZooOptions(argv: string[]): ZooBenchOptions {
  const { values, quick, out, readme } = benchArgs(argv, { models: { type: 'string' }, threads: { type: 'string' }, python: { type: 'string' }, ablate: { type: 'boolean', default: false } }, 'zoo-results');
  const names = values.models?.split(',').map((s) => s.trim()) ?? MODELS;
  for (const n of names) if (!Object.hasOwn(zoo, n)) throw new RangeError(`--models: unknown zoo model '${n}' (known: ${Object.keys(zoo).join(', ')})`);
  return {
    quick,
    ablate: values.ablate,
    models: names as ZooName[],
    threads: positiveInt('--threads', values.threads) ?? availableParallelism(),
    reps: quick ? 1 : 5,
    trainSteps: quick ? 3 : 12,
    evalImages: quick ? 512 : 2048,
    python: values.python ?? '/usr/bin/python3',
    out,
    readme,
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(BENCH, 'zoo.ts')) {
  zooBenchmark(parseZooOptions(process.argv.slice(2))).catch((err: unknown) => {
    process.stderr.write(`bench:zoo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
