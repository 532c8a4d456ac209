// `npm run bench`: torchlet against Debian's PyTorch 1.13.1 on the same machine, model
// (SuperLight) and thread count, each figure the median of repetitions that alternate
// between the two sides after a warm-up (issue 5). See bench/README.md.
//
//   npm run bench                      # full: every figure, results.json, README table
//   npm run bench -- --quick           # smoke run (CI): tiny sizes, results.quick.json
//   npm run bench -- --skip-full-run   # full, without the 15-epoch runs of figure 5
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadRawDataset, type RawSplit } from '../src/data/mnist.js';
import {
  createTrainer,
  Dataset,
  getThreads,
  Model,
  native,
  resolveRecipe,
  setThreads,
  superLight,
  train,
  DOCUMENTED_PARAMS,
  type Layer,
  type ModelSpec,
} from '../src/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH = join(ROOT, 'bench');
const README_START = '<!-- bench:start -->';
const README_END = '<!-- bench:end -->';
const BATCH = 128;
const EVAL_BATCH = 1000;
const SEED = 42;

/** PyTorch's evaluation modes, all under inference_mode; the fastest is the comparison.
 * torchlet's evaluate runs its batches as forward passes of at most 128 rows on CPU, so
 * PyTorch gets that option too. */
interface EvalVariant {
  layout: 'contiguous' | 'channels_last';
  chunk: number;
}
const EVAL_VARIANTS: EvalVariant[] = [
  { layout: 'contiguous', chunk: EVAL_BATCH },
  { layout: 'channels_last', chunk: EVAL_BATCH },
  { layout: 'contiguous', chunk: 128 },
  { layout: 'channels_last', chunk: 128 },
];
const variantName = (v: EvalVariant): string => (v.chunk === EVAL_BATCH ? v.layout : `${v.layout}, passes of ${v.chunk}`);
/** SuperLight's forward pass, as stated in issue 5 (checked against the spec below). */
const DOCUMENTED_FORWARD_MACS = 342_576;

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

const HELP = `npm run bench [-- options]

  --quick                  tiny sizes, 1 repetition, no full run; writes bench/results.quick.json, never the README
  --threads N              intra-op threads on both sides (default: the number of cores)
  --ref-threads N          torch threads of the PyTorch reference DataLoader pipeline (default: PyTorch's default)
  --reps N                 repetitions per figure (default: 3 for training figures, 5 for the others; quick: 1)
  --train-images N         images per training repetition (default 60000: one epoch; quick: 256)
  --skip-full-run          omit figure 5 (the 15-epoch runs)
  --full-run-reps N        repetitions of figure 5 (default 3)
  --full-run-epochs N      epochs of figure 5 (default 15; fewer only for smoke tests)
  --full-run-train-images N, --full-run-test-images N   subsets for smoke tests of figure 5
  --out FILE               results file (default bench/results.json, quick: bench/results.quick.json)
  --readme FILE            README to update between ${README_START} and ${README_END} (default README.md)
  --no-readme              do not touch the README
  --python PATH            Python with torch (default /usr/bin/python3)
  --data-dir DIR           folder holding the MNIST .gz files (default: torchlet's usual search)
  --peak-gflops X          the machine's peak for the GFLOP/s figure (default 78.5 per core: AVX2 + FMA at ~2.45 GHz)
`;

interface Options {
  quick: boolean;
  threads: number;
  refThreads: number | undefined;
  trainReps: number;
  shortReps: number;
  trainImages: number;
  warmImages: number;
  evalImages: number;
  latencyCount: number;
  latencyWarm: number;
  fullRun: boolean;
  fullRunReps: number;
  fullRunEpochs: number;
  fullRunTrainImages: number | undefined;
  fullRunTestImages: number | undefined;
  out: string;
  readme: string | undefined;
  python: string;
  dataDir: string | undefined;
  peakGflops: number;
}

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`${name} must be a positive integer, got '${value}'`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      threads: { type: 'string' },
      'ref-threads': { type: 'string' },
      reps: { type: 'string' },
      'train-images': { type: 'string' },
      'skip-full-run': { type: 'boolean', default: false },
      'full-run-reps': { type: 'string' },
      'full-run-epochs': { type: 'string' },
      'full-run-train-images': { type: 'string' },
      'full-run-test-images': { type: 'string' },
      out: { type: 'string' },
      readme: { type: 'string' },
      'no-readme': { type: 'boolean', default: false },
      python: { type: 'string' },
      'data-dir': { type: 'string' },
      'peak-gflops': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const quick = values.quick;
  const cores = availableParallelism();
  const reps = positiveInt('--reps', values.reps);
  const trainImages = Math.min(60_000, positiveInt('--train-images', values['train-images']) ?? (quick ? 2 * BATCH : 60_000));
  const peak = values['peak-gflops'] === undefined ? 78.5 * cores : Number(values['peak-gflops']);
  if (!(peak > 0)) throw new RangeError(`--peak-gflops must be a positive number, got '${values['peak-gflops']}'`);
  return {
    quick,
    threads: positiveInt('--threads', values.threads) ?? cores,
    refThreads: positiveInt('--ref-threads', values['ref-threads']),
    trainReps: reps ?? (quick ? 1 : 3),
    shortReps: reps ?? (quick ? 1 : 5),
    trainImages,
    // The warm-up: a few steps on each side (the trainer's schedule has room for them).
    warmImages: Math.min(trainImages, quick ? BATCH : 10 * BATCH),
    evalImages: quick ? EVAL_BATCH : 10_000,
    latencyCount: quick ? 20 : 1000,
    latencyWarm: quick ? 5 : 200,
    fullRun: !quick && !values['skip-full-run'],
    fullRunReps: positiveInt('--full-run-reps', values['full-run-reps']) ?? 3,
    fullRunEpochs: positiveInt('--full-run-epochs', values['full-run-epochs']) ?? 15,
    fullRunTrainImages: positiveInt('--full-run-train-images', values['full-run-train-images']),
    fullRunTestImages: positiveInt('--full-run-test-images', values['full-run-test-images']),
    out: resolve(values.out ?? join(BENCH, quick ? 'results.quick.json' : 'results.json')),
    readme: quick || values['no-readme'] ? undefined : resolve(values.readme ?? join(ROOT, 'README.md')),
    python: values.python ?? '/usr/bin/python3',
    dataDir: values['data-dir'],
    peakGflops: peak,
  };
}

// ---------------------------------------------------------------------------------------
// Statistics and formatting
// ---------------------------------------------------------------------------------------

interface Stats {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

function stats(samples: number[]): Stats {
  if (samples.length === 0) throw new Error('no samples');
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples };
}

/** The q-th quantile (0-1) by nearest rank. */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}

const int = (x: number): string => Math.round(x).toLocaleString('en-US');
const fixed = (digits: number) => (x: number): string => x.toFixed(digits);
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

// ---------------------------------------------------------------------------------------
// The PyTorch side: bench/pytorch_bench.py, one long-lived process answering JSON lines
// ---------------------------------------------------------------------------------------

const Hello = z.object({
  python: z.string(),
  torch: z.string(),
  torchvision: z.string().nullable(),
  torchvision_error: z.string().nullable(),
  numpy: z.string(),
  default_threads: z.number(),
  threads: z.number(),
  ref_threads: z.number(),
  parallel_backend: z.string().nullable(),
  params: z.number(),
  train_images: z.number(),
  test_images: z.number(),
});
type Hello = z.infer<typeof Hello>;
const TrainInit = z.object({ steps_per_epoch: z.number() });
const TrainRun = z.object({ seconds: z.number(), cpu_seconds: z.number(), steps: z.number(), samples: z.number(), threads: z.number() });
const EvalRun = z.object({ seconds: z.number(), count: z.number(), accuracy: z.number(), threads: z.number() });
const PredictRun = z.object({ latencies_ns: z.array(z.number()), checksum: z.number() });
const Reply = z.union([
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({ ok: z.literal(false), error: z.string(), traceback: z.string().optional() }),
]);

class PythonWorker {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  private stderrTail = '';
  private failure: Error | undefined;

  constructor(python: string, args: string[]) {
    this.proc = spawn(python, args, {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
    });
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.waiting.shift()?.resolve(line));
    this.proc.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.stderrTail = (this.stderrTail + text).slice(-6000);
      process.stderr.write(text.replace(/^(?=.)/gm, '  [pytorch] '));
    });
    const fail = (err: Error): void => {
      this.failure ??= err;
      for (const w of this.waiting.splice(0)) w.reject(this.failure);
    };
    this.proc.on('error', (err) => fail(new Error(`cannot run ${python}: ${err.message}`)));
    this.proc.on('exit', (code, signal) => fail(new Error(`${python} bench/pytorch_bench.py exited (${signal ?? `code ${code}`}):\n${this.stderrTail}`)));
  }

  async request<T>(schema: z.ZodType<T>, cmd: Record<string, unknown>): Promise<T> {
    if (this.failure) throw this.failure;
    const line = await new Promise<string>((resolveLine, reject) => {
      this.waiting.push({ resolve: resolveLine, reject });
      this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    });
    let reply: z.infer<typeof Reply>;
    try {
      reply = Reply.parse(JSON.parse(line));
    } catch {
      throw new Error(`unexpected output from bench/pytorch_bench.py: ${line.slice(0, 500)}`);
    }
    if (!reply.ok) throw new Error(`PyTorch side, ${String(cmd.cmd)}: ${reply.error}\n${reply.traceback ?? ''}`);
    return schema.parse(reply.result);
  }

  async close(): Promise<void> {
    if (this.failure || this.proc.exitCode !== null) return;
    const exited = new Promise<void>((done) => this.proc.once('exit', () => done()));
    this.proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    await Promise.race([exited, new Promise<void>((done) => setTimeout(done, 10_000).unref())]);
    if (this.proc.exitCode === null) this.proc.kill();
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill();
  }
}

// ---------------------------------------------------------------------------------------
// Model arithmetic
// ---------------------------------------------------------------------------------------

/** Multiply-adds of one forward pass, walking the spec (convolutions and linear layers). */
function forwardMacs(spec: ModelSpec): number {
  let [c, h, w] = [spec.input.channels, spec.input.height, spec.input.width];
  const walk = (layers: Layer[]): number => {
    let macs = 0;
    for (const l of layers) {
      switch (l.type) {
        case 'conv2d': {
          const s = l.stride ?? 1;
          const p = l.padding ?? 0;
          h = Math.floor((h + 2 * p - l.kernel) / s) + 1;
          w = Math.floor((w + 2 * p - l.kernel) / s) + 1;
          macs += l.out * l.in * l.kernel * l.kernel * h * w;
          c = l.out;
          break;
        }
        case 'maxpool2d':
        case 'avgpool2d': {
          const s = l.stride ?? l.kernel;
          h = Math.floor((h - l.kernel) / s) + 1;
          w = Math.floor((w - l.kernel) / s) + 1;
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
          macs += walk(l.layers);
          break;
        case 'concat':
          throw new Error('forwardMacs: concat is not supported');
        default:
          break;
      }
    }
    return macs;
  };
  return walk(spec.layers);
}

// ---------------------------------------------------------------------------------------
// Machine
// ---------------------------------------------------------------------------------------

interface Machine {
  cpu: string;
  cores: number;
  flags: string[];
  memoryGiB: number;
  kernel: string;
  node: string;
  libtorch: string;
  torch: string;
  torchvision: string | null;
  python: string;
  numpy: string;
  /** Installed versions of libtorch-dev, python3-torch, python3-torchvision (dpkg). */
  debianPackages: Record<string, string>;
  pytorchDefaultThreads: number;
  pytorchParallelBackend: string | null;
  loadavgStart: number[];
  loadavgEnd?: number[];
}

function cpuInfo(): { model: string; flags: string[] } {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: fall back to os.cpus()
  }
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const flags = (field('flags') ?? '').split(/\s+/);
  return {
    model: field('model name') ?? cpus()[0]?.model ?? 'unknown',
    flags: ['avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni', 'amx_tile'].filter((f) => flags.includes(f)),
  };
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

interface Target {
  /** ratio = torchlet / PyTorch (or torchlet's value alone for the boundary share). */
  op: '>=' | '<=' | '<';
  value: number;
  on: 'ratio' | 'torchlet';
}

interface Figure {
  id: string;
  title: string;
  unit: string;
  format: (x: number) => string;
  torchlet: Stats | null;
  pytorch: Stats | null;
  pytorchConfig: string;
  target?: Target;
  /** Accuracy is compared as a difference (percentage points), everything else as a ratio. */
  compare?: 'ratio' | 'difference';
}

const ratioOf = (f: Figure): number | null =>
  f.torchlet && f.pytorch && f.compare !== 'difference' ? f.torchlet.median / f.pytorch.median : null;

function comparison(f: Figure): string {
  if (!f.torchlet || !f.pytorch) return '—';
  if (f.compare === 'difference') {
    const d = 100 * (f.torchlet.median - f.pytorch.median);
    return `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(2)} pts`;
  }
  return `${(f.torchlet.median / f.pytorch.median).toFixed(2)}x`;
}

function verdict(f: Figure): 'PASS' | 'MISS' | 'n/a' | '' {
  if (!f.target) return '';
  const x = f.target.on === 'ratio' ? ratioOf(f) : (f.torchlet?.median ?? null);
  if (x === null) return 'n/a';
  const ok = f.target.op === '>=' ? x >= f.target.value : f.target.op === '<=' ? x <= f.target.value : x < f.target.value;
  return ok ? 'PASS' : 'MISS';
}

function targetText(t: Target | undefined, format: (x: number) => string): string {
  if (!t) return '';
  const op = { '>=': '≥', '<=': '≤', '<': '<' }[t.op];
  return t.on === 'ratio' ? `${op} ${t.value}x` : `${op} ${format(t.value)}`;
}

const cell = (s: Stats | null, format: (x: number) => string, range = true): string =>
  s === null ? '—' : range && s.samples.length > 1 ? `${format(s.median)} (${format(s.min)}–${format(s.max)})` : format(s.median);

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

interface TorchletTrainRep {
  wall: number;
  native: number;
  cpu: number;
  samples: number;
}

const noProgress = (): void => undefined;

async function torchletEpoch(trainer: ReturnType<typeof createTrainer>, data: Dataset, epoch: number): Promise<TorchletTrainRep> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // The same call train() makes, progress callback included.
  const s = await trainer.trainEpoch(data.handle, epoch, noProgress);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { wall, native: s.seconds, cpu: (cpu.user + cpu.system) / 1e6, samples: s.samples };
}

/** One side of a comparison: torchlet, or one PyTorch setup. */
interface Side {
  label: string;
  warm: () => Promise<void>;
  rep: (i: number) => Promise<number>;
}

/** Warm-up on every side, then `reps` rounds of one repetition per side, in turn. */
async function alternate(name: string, reps: number, sides: Side[], format: (x: number) => string, unit: string): Promise<number[][]> {
  for (const side of sides) await side.warm();
  const results: number[][] = sides.map(() => []);
  for (let r = 0; r < reps; r++) {
    const parts: string[] = [];
    for (const [i, side] of sides.entries()) {
      const x = await side.rep(r);
      results[i]?.push(x);
      parts.push(`${side.label} ${format(x)}`);
    }
    log(`  ${name} rep ${r + 1}/${reps}: ${parts.join(' | ')} ${unit}`);
  }
  return results;
}

const T0 = performance.now();

/** Progress on stderr; the phase lines carry the seconds since start. */
function log(line: string): void {
  process.stderr.write(`${/^\[\d\/\d\]/.test(line) ? `${((performance.now() - T0) / 1000).toFixed(1).padStart(6)}s ` : ''}${line}\n`);
}

type Layout = 'contiguous' | 'channels_last';

/** One PyTorch training setup (see bench/pytorch_bench.py's train_init). */
interface PyTrainVariant {
  id: string;
  kind: 'memory' | 'memory_aug' | 'reference';
  layout: Layout;
}

interface TrainFigureData {
  torchlet: TorchletTrainRep[];
  /** Repetitions per PyTrainVariant id. */
  pytorch: Record<string, z.infer<typeof TrainRun>[]>;
}

async function trainFigures(opts: Options, py: PythonWorker, trainSet: Dataset, aug: boolean, variants: PyTrainVariant[]): Promise<TrainFigureData> {
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

interface LatencyData {
  torchletP50: number[];
  torchletP99: number[];
  pytorchP50: number[];
  pytorchP99: number[];
  torchletAll: number[];
  pytorchAll: number[];
  /** Sum of the predicted digits, so that no prediction is dead code. */
  checksum: number;
}

async function latencyFigure(opts: Options, py: PythonWorker, test: RawSplit): Promise<LatencyData> {
  const pixels = test.rows * test.cols;
  // Decoded images, each its own buffer, made outside the timed region.
  const images = Array.from({ length: Math.min(test.count, opts.latencyCount + opts.latencyWarm) }, (_, i) =>
    test.images.slice(i * pixels, (i + 1) * pixels),
  );
  const model = new Model(superLight, { seed: SEED });
  const out: LatencyData = { torchletP50: [], torchletP99: [], pytorchP50: [], pytorchP99: [], torchletAll: [], pytorchAll: [], checksum: 0 };
  let checksum = 0;
  const torchletRun = (count: number, offset: number): number[] => {
    const ns: number[] = [];
    for (let i = 0; i < count; i++) {
      const image = images[(offset + i) % images.length] ?? new Uint8Array(pixels);
      const t0 = process.hrtime.bigint();
      checksum += model.predict(image).digit;
      ns.push(Number(process.hrtime.bigint() - t0));
    }
    return ns;
  };
  try {
    torchletRun(opts.latencyWarm, 0);
    await py.request(PredictRun, { cmd: 'predict_run', count: opts.latencyWarm, offset: 0 });
    for (let r = 0; r < opts.shortReps; r++) {
      const t = torchletRun(opts.latencyCount, opts.latencyWarm);
      const p = (await py.request(PredictRun, { cmd: 'predict_run', count: opts.latencyCount, offset: opts.latencyWarm })).latencies_ns;
      out.torchletP50.push(quantile(t, 0.5) / 1e3);
      out.torchletP99.push(quantile(t, 0.99) / 1e3);
      out.pytorchP50.push(quantile(p, 0.5) / 1e3);
      out.pytorchP99.push(quantile(p, 0.99) / 1e3);
      out.torchletAll.push(...t.map((x) => x / 1e3));
      out.pytorchAll.push(...p.map((x) => x / 1e3));
      log(
        `  predict rep ${r + 1}/${opts.shortReps}: torchlet p50 ${fixed(1)(out.torchletP50.at(-1) ?? NaN)} p99 ${fixed(1)(out.torchletP99.at(-1) ?? NaN)} | ` +
          `PyTorch p50 ${fixed(1)(out.pytorchP50.at(-1) ?? NaN)} p99 ${fixed(1)(out.pytorchP99.at(-1) ?? NaN)} µs`,
      );
    }
  } finally {
    model.dispose();
  }
  out.checksum = checksum;
  return out;
}

interface FullRunRep {
  torchlet: { wall: number; finalTestAccuracy: number; epochs: number };
  pytorch: { wall: number; processWall: number; finalTestAccuracy: number; epochs: number; threads: number };
}

const RefEpoch = z.object({ epoch: z.number(), test_accuracy: z.number(), train_accuracy: z.number(), seconds: z.number() });
const RefDone = z.object({
  done: z.literal(true),
  wall_s: z.number(),
  final_test_accuracy: z.number(),
  epochs: z.number(),
  threads: z.number(),
  params: z.number(),
});

async function referenceRun(opts: Options, dataDir: string): Promise<FullRunRep['pytorch']> {
  const args = [join(BENCH, 'reference_train.py'), '--json', '--data', dataDir, '--epochs', String(opts.fullRunEpochs), '--seed', String(SEED)];
  if (opts.refThreads !== undefined) args.push('--threads', String(opts.refThreads));
  if (opts.fullRunTrainImages !== undefined) args.push('--train-limit', String(opts.fullRunTrainImages));
  if (opts.fullRunTestImages !== undefined) args.push('--test-limit', String(opts.fullRunTestImages));
  const t0 = performance.now();
  const proc = spawn(opts.python, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  let done: z.infer<typeof RefDone> | undefined;
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-6000);
    process.stderr.write(c.toString('utf8').replace(/^(?=.)/gm, '  [reference_train] '));
  });
  createInterface({ input: proc.stdout }).on('line', (line) => {
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      log(`  [reference_train] ${line}`);
      return;
    }
    const epoch = RefEpoch.safeParse(obj);
    if (epoch.success) {
      const e = epoch.data;
      log(`    PyTorch epoch ${e.epoch}/${opts.fullRunEpochs}: train ${pct(e.train_accuracy)} test ${pct(e.test_accuracy)} ${e.seconds.toFixed(1)} s`);
    }
    const fin = RefDone.safeParse(obj);
    if (fin.success) done = fin.data;
  });
  const code = await new Promise<number | null>((resolveExit, reject) => {
    proc.on('error', reject);
    proc.on('close', (c) => resolveExit(c));
  });
  const processWall = (performance.now() - t0) / 1000;
  if (code !== 0 || done === undefined) throw new Error(`bench/reference_train.py failed (exit ${code}):\n${stderr}`);
  if (done.params !== DOCUMENTED_PARAMS.super_light) throw new Error(`reference_train.py built ${done.params} parameters`);
  return { wall: done.wall_s, processWall, finalTestAccuracy: done.final_test_accuracy, epochs: done.epochs, threads: done.threads };
}

async function torchletFullRun(opts: Options, trainSet: Dataset, testSet: Dataset): Promise<FullRunRep['torchlet']> {
  const trainData = opts.fullRunTrainImages !== undefined && opts.fullRunTrainImages < trainSet.size ? trainSet.slice(0, opts.fullRunTrainImages) : trainSet;
  const testData = opts.fullRunTestImages !== undefined && opts.fullRunTestImages < testSet.size ? testSet.slice(0, opts.fullRunTestImages) : testSet;
  const model = new Model(superLight, { seed: SEED });
  try {
    const t0 = performance.now();
    const result = await train(
      model,
      { train: trainData, test: testData },
      {
        aug: true,
        epochs: opts.fullRunEpochs,
        onEpoch: (r) =>
          log(`    torchlet epoch ${r.epoch}/${opts.fullRunEpochs}: train ${pct(r.trainAccuracy)} test ${pct(r.testAccuracy)} ${r.seconds.toFixed(1)} s`),
      },
    );
    const wall = (performance.now() - t0) / 1000;
    return { wall, finalTestAccuracy: result.final.testAccuracy, epochs: result.history.length };
  } finally {
    model.dispose();
    if (trainData !== trainSet) trainData.dispose();
    if (testData !== testSet) testData.dispose();
  }
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

function printTable(figures: Figure[]): void {
  const rows = figures.map((f) => [
    `${f.title} (${f.unit})`,
    cell(f.torchlet, f.format),
    cell(f.pytorch, f.format),
    comparison(f),
    targetText(f.target, f.format),
    verdict(f),
  ]);
  const header = ['figure', 'torchlet median (min–max)', 'PyTorch median (min–max)', 'torchlet/PyTorch', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('PyTorch side:');
  const seen = new Set<string>();
  for (const f of figures) {
    const text = `  ${f.title.split(' ')[0]} ${f.pytorchConfig}`;
    if (f.pytorchConfig && !seen.has(text)) console.log(text);
    seen.add(text);
  }
}

function markdown(figures: Figure[], caption: string, extra: string[]): string {
  const lines = [
    caption,
    '',
    '| figure | torchlet | PyTorch | torchlet ÷ PyTorch | target |',
    '|---|---:|---:|---:|---|',
    ...figures.map((f) => {
      const v = verdict(f);
      const target = f.target ? `${targetText(f.target, f.format)}${v ? ` (${v})` : ''}` : '';
      const py = f.pytorch ? `${cell(f.pytorch, f.format)}<br><sub>${f.pytorchConfig}</sub>` : '—';
      return `| ${f.title} (${f.unit}) | ${cell(f.torchlet, f.format)} | ${py} | ${comparison(f)} | ${target} |`;
    }),
    '',
    ...extra,
  ];
  return lines.join('\n');
}

function updateReadme(path: string, table: string): boolean {
  if (!existsSync(path)) {
    log(`warning: ${path} does not exist; the table was not written`);
    return false;
  }
  const text = readFileSync(path, 'utf8');
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) {
    log(`warning: ${path} has no ${README_START} ... ${README_END} markers; the table was not written`);
    return false;
  }
  const next = `${text.slice(0, start + README_START.length)}\n${table.trimEnd()}\n${text.slice(end)}`;
  const tmp = `${path}.tmp-bench-${process.pid}`;
  writeFileSync(tmp, next);
  renameSync(tmp, path);
  return true;
}

// ---------------------------------------------------------------------------------------
// Evaluation (figure 3)
// ---------------------------------------------------------------------------------------

interface EvalData {
  torchlet: number[];
  torchletNativeSeconds: number[];
  /** images/s per EVAL_VARIANTS name. */
  pytorch: Record<string, number[]>;
  best: string;
}

async function evalFigure(opts: Options, py: PythonWorker, testSet: Dataset): Promise<EvalData> {
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

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

/** PyTorch's training setups: the figure compares torchlet with the fastest of each group. */
const NOAUG_VARIANTS: PyTrainVariant[] = [
  { id: 'memory', kind: 'memory', layout: 'contiguous' },
  { id: 'memory-channels_last', kind: 'memory', layout: 'channels_last' },
];
const REFERENCE_VARIANT: PyTrainVariant = { id: 'reference', kind: 'reference', layout: 'contiguous' };
const BATCHED_AUG_VARIANTS: PyTrainVariant[] = [
  { id: 'batched_aug', kind: 'memory_aug', layout: 'contiguous' },
  { id: 'batched_aug-channels_last', kind: 'memory_aug', layout: 'channels_last' },
];

type TrainRunResult = z.infer<typeof TrainRun>;
const perSecond = (reps: TrainRunResult[]): Stats | null => (reps.length ? stats(reps.map((r) => r.samples / r.seconds)) : null);

/** The variant (of `variants`) with the highest median images/s. */
function fastest(data: TrainFigureData, variants: PyTrainVariant[]): { variant: PyTrainVariant; stats: Stats } | null {
  let best: { variant: PyTrainVariant; stats: Stats } | null = null;
  for (const variant of variants) {
    const s = perSecond(data.pytorch[variant.id] ?? []);
    if (s && (!best || s.median > best.stats.median)) best = { variant, stats: s };
  }
  return best;
}

const threadsText = (n: number): string => (n === 1 ? '1 thread' : `${n} threads`);

function debianVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pkg of ['libtorch-dev', 'python3-torch', 'python3-torchvision']) {
    try {
      const v = execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      if (v) out[pkg] = v;
    } catch {
      // not Debian, or not installed
    }
  }
  return out;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const cores = availableParallelism();
  const cpu = cpuInfo();
  const loadStart = loadavg();
  log(`torchlet bench (${opts.quick ? 'quick' : 'full'}): ${cpu.model}, ${cores} cores, ${threadsText(opts.threads)} on both sides`);
  if (!opts.quick && (loadStart[0] ?? 0) > 0.5 * cores) {
    log(`warning: load average ${loadStart.map(fixed(2)).join(' ')} on ${cores} cores: the machine is busy and the figures will be noisy`);
  }
  if (!opts.quick && (opts.trainReps < 3 || opts.shortReps < 3 || (opts.fullRun && opts.fullRunReps < 3))) {
    log('warning: fewer than 3 repetitions for some figure; the issue asks for at least 3');
  }

  // The same thread count on both sides, set before any libtorch work so that the worker
  // threads trainEpoch and evaluate run on pick it up.
  setThreads(opts.threads);
  if (getThreads() !== opts.threads) throw new Error(`setThreads(${opts.threads}) left libtorch with ${getThreads()} threads`);

  const raw = await loadRawDataset(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {});
  const trainSet = Dataset.fromRaw(raw.train);
  const testSet = Dataset.fromRaw(raw.test);

  const pyArgs = [join(BENCH, 'pytorch_bench.py'), '--data', raw.dir, '--threads', String(opts.threads)];
  if (opts.refThreads !== undefined) pyArgs.push('--ref-threads', String(opts.refThreads));
  const py = new PythonWorker(opts.python, pyArgs);
  const cleanup = (): void => py.kill();
  process.once('exit', cleanup);

  try {
    const hello: Hello = await py.request(Hello, { cmd: 'hello' });
    if (hello.threads !== opts.threads) throw new Error(`PyTorch runs ${hello.threads} threads, torchlet ${opts.threads}`);
    const probe = new Model(superLight, { seed: SEED });
    const torchletParams = probe.numParams();
    probe.dispose();
    if (torchletParams !== DOCUMENTED_PARAMS.super_light || hello.params !== DOCUMENTED_PARAMS.super_light) {
      throw new Error(`SuperLight has ${torchletParams} parameters in torchlet and ${hello.params} in PyTorch, expected ${DOCUMENTED_PARAMS.super_light}`);
    }
    const macs = forwardMacs(superLight);
    if (macs !== DOCUMENTED_FORWARD_MACS) log(`warning: SuperLight's forward pass counts ${macs} multiply-adds, the issue says ${DOCUMENTED_FORWARD_MACS}`);
    const haveTorchvision = hello.torchvision !== null;
    if (!haveTorchvision) {
      const msg = `torchvision is not importable by ${opts.python} (${hello.torchvision_error}); install python3-torchvision and python3-pil`;
      if (!opts.quick) throw new Error(`${msg}: the reference pipeline (figures 2 and 5) needs it`);
      log(`warning: ${msg}; skipping the reference-pipeline measurement`);
    }
    log(
      `PyTorch ${hello.torch} (torchvision ${hello.torchvision ?? 'missing'}), ${threadsText(hello.threads)}; the reference pipeline at ` +
        `${threadsText(hello.ref_threads)} (PyTorch's default here: ${hello.default_threads})`,
    );

    // Figures 1 and 6: the train step without augmentation.
    log(`[1/5] train step, no augmentation, data in memory, batch ${BATCH}: ${opts.trainImages} images per rep, ${opts.trainReps} reps`);
    const noAug = await trainFigures(opts, py, trainSet, false, NOAUG_VARIANTS);

    // Figures 2 and 6: with the reference augmentation.
    log(`[2/5] train with the reference augmentation: ${opts.trainImages} images per rep, ${opts.trainReps} reps`);
    const withAug = await trainFigures(opts, py, trainSet, true, [...(haveTorchvision ? [REFERENCE_VARIANT] : []), ...BATCHED_AUG_VARIANTS]);

    // Figure 3: evaluation at batch 1000.
    log(`[3/5] evaluation, batch ${EVAL_BATCH}: ${opts.evalImages} test images per rep, ${opts.shortReps} reps`);
    const evaluation = await evalFigure(opts, py, testSet);

    // Figure 4: single-image latency.
    log(`[4/5] single-image prediction latency: ${opts.latencyCount} predictions per rep, ${opts.shortReps} reps`);
    const latency = await latencyFigure(opts, py, raw.test);

    // Figure 5: the full reference run, torchlet then PyTorch, per repetition.
    const fullRuns: FullRunRep[] = [];
    if (opts.fullRun) {
      log(`[5/5] full reference run with augmentation: ${opts.fullRunEpochs} epochs, ${opts.fullRunReps} reps (minutes each)`);
      for (let r = 0; r < opts.fullRunReps; r++) {
        const t = await torchletFullRun(opts, trainSet, testSet);
        log(`  full run rep ${r + 1}/${opts.fullRunReps}: torchlet ${t.wall.toFixed(1)} s, test ${pct(t.finalTestAccuracy)}`);
        const p = await referenceRun(opts, raw.dir);
        log(`  full run rep ${r + 1}/${opts.fullRunReps}: PyTorch ${p.wall.toFixed(1)} s, test ${pct(p.finalTestAccuracy)}`);
        fullRuns.push({ torchlet: t, pytorch: p });
      }
    } else {
      log(`[5/5] full reference run: skipped (${opts.quick ? '--quick' : '--skip-full-run'})`);
    }

    // ---- assemble ----------------------------------------------------------------------
    const torchletPerSecond = (reps: TorchletTrainRep[]): Stats => stats(reps.map((r) => r.samples / r.wall));
    const boundary = (reps: TorchletTrainRep[]): Stats => stats(reps.map((r) => (r.wall - r.native) / r.wall));
    const th = threadsText(opts.threads);
    const refCfg = `torchvision DataLoader over PIL images, 2 workers, ${threadsText(hello.ref_threads)} (PyTorch's default)`;
    const bestNoAug = fastest(noAug, NOAUG_VARIANTS);
    const bestAug = fastest(withAug, BATCHED_AUG_VARIANTS);
    const notRun = `not run (${opts.quick ? '--quick' : '--skip-full-run'})`;
    const figures: Figure[] = [
      {
        id: 'train_noaug',
        title: `1. Train step, no augmentation, in memory, batch ${BATCH}`,
        unit: 'images/s',
        format: int,
        torchlet: torchletPerSecond(noAug.torchlet),
        pytorch: bestNoAug?.stats ?? null,
        pytorchConfig: `uint8 tensor in memory, ${bestNoAug?.variant.layout ?? '?'} (the faster layout), ${th}`,
        target: { op: '>=', value: 1.05, on: 'ratio' },
      },
      {
        id: 'train_aug_vs_reference',
        title: '2a. Train with the reference augmentation, vs the reference pipeline',
        unit: 'images/s',
        format: int,
        torchlet: torchletPerSecond(withAug.torchlet),
        pytorch: perSecond(withAug.pytorch[REFERENCE_VARIANT.id] ?? []),
        pytorchConfig: haveTorchvision ? refCfg : 'skipped: torchvision missing',
        target: { op: '>=', value: 2.0, on: 'ratio' },
      },
      {
        id: 'train_aug_vs_best',
        title: '2b. Train with the reference augmentation, vs the best PyTorch setup',
        unit: 'images/s',
        format: int,
        torchlet: torchletPerSecond(withAug.torchlet),
        pytorch: bestAug?.stats ?? null,
        pytorchConfig: `uint8 tensor in memory, batched affine + perspective via one grid_sample, ${bestAug?.variant.layout ?? '?'} (the faster layout), ${th}`,
        target: { op: '>=', value: 1.3, on: 'ratio' },
      },
      {
        id: 'eval',
        title: `3. Evaluation, batch ${EVAL_BATCH}`,
        unit: 'images/s',
        format: int,
        torchlet: stats(evaluation.torchlet),
        pytorch: stats(evaluation.pytorch[evaluation.best] ?? []),
        pytorchConfig: `inference_mode, ${evaluation.best} (the fastest of ${EVAL_VARIANTS.length} modes), ${th}`,
        target: { op: '>=', value: 1.0, on: 'ratio' },
      },
      {
        id: 'predict_p50',
        title: '4. Single-image prediction latency, p50',
        unit: 'µs',
        format: fixed(1),
        torchlet: stats(latency.torchletP50),
        pytorch: stats(latency.pytorchP50),
        pytorchConfig: `numpy uint8 → float → normalise → model → argmax, inference_mode, ${th}`,
      },
      {
        id: 'predict_p99',
        title: '4. Single-image prediction latency, p99',
        unit: 'µs',
        format: fixed(1),
        torchlet: stats(latency.torchletP99),
        pytorch: stats(latency.pytorchP99),
        pytorchConfig: `numpy uint8 → float → normalise → model → argmax, inference_mode, ${th}`,
      },
      {
        id: 'full_run_wall',
        title: `5. Full ${opts.fullRunEpochs}-epoch reference run with augmentation, evaluation included`,
        unit: 's',
        format: fixed(1),
        torchlet: fullRuns.length ? stats(fullRuns.map((r) => r.torchlet.wall)) : null,
        pytorch: fullRuns.length ? stats(fullRuns.map((r) => r.pytorch.wall)) : null,
        pytorchConfig: fullRuns.length ? `bench/reference_train.py: ${refCfg}` : notRun,
        target: { op: '<=', value: 0.5, on: 'ratio' },
      },
      {
        id: 'full_run_accuracy',
        title: `5. Final test accuracy of that run, seed ${SEED}`,
        unit: '%',
        format: (x) => (100 * x).toFixed(2),
        torchlet: fullRuns.length ? stats(fullRuns.map((r) => r.torchlet.finalTestAccuracy)) : null,
        pytorch: fullRuns.length ? stats(fullRuns.map((r) => r.pytorch.finalTestAccuracy)) : null,
        pytorchConfig: fullRuns.length ? 'bench/reference_train.py' : notRun,
        compare: 'difference',
      },
      {
        id: 'boundary_noaug',
        title: '6. JS/N-API boundary share of trainEpoch, no augmentation',
        unit: '% of wall time',
        format: pct,
        torchlet: boundary(noAug.torchlet),
        pytorch: null,
        pytorchConfig: '',
        target: { op: '<', value: 0.03, on: 'torchlet' },
      },
      {
        id: 'boundary_aug',
        title: '6. JS/N-API boundary share of trainEpoch, with augmentation',
        unit: '% of wall time',
        format: pct,
        torchlet: boundary(withAug.torchlet),
        pytorch: null,
        pytorchConfig: '',
        target: { op: '<', value: 0.03, on: 'torchlet' },
      },
    ];

    // Achieved GFLOP/s of the train step: forward 2 x MACs, backward twice the forward.
    const trainFlops = 3 * 2 * macs;
    const gflops = (imagesPerSecond: number | undefined): number | null => (imagesPerSecond === undefined ? null : (imagesPerSecond * trainFlops) / 1e9);
    const gf = {
      forwardMacsPerImage: macs,
      trainFlopsPerImage: trainFlops,
      peakGflops: opts.peakGflops,
      torchletNoAug: gflops(figures[0]?.torchlet?.median),
      pytorchNoAug: gflops(figures[0]?.pytorch?.median),
      torchletAug: gflops(figures[2]?.torchlet?.median),
      pytorchBestAug: gflops(figures[2]?.pytorch?.median),
    };
    const gfText = (x: number | null): string => (x === null ? '—' : `${x.toFixed(1)} GFLOP/s (${((100 * x) / opts.peakGflops).toFixed(1)}% of peak)`);
    const cpuShare = (reps: TrainRunResult[] | undefined): number => median((reps ?? []).map((r) => r.cpu_seconds / r.seconds));
    const cpuPerWall = {
      torchletNoAug: median(noAug.torchlet.map((r) => r.cpu / r.wall)),
      torchletAug: median(withAug.torchlet.map((r) => r.cpu / r.wall)),
      pytorch: Object.fromEntries(Object.entries({ ...noAug.pytorch, ...withAug.pytorch }).map(([id, reps]) => [id, cpuShare(reps)])),
    };
    const pyVariantRates = Object.fromEntries(
      Object.entries({ ...noAug.pytorch, ...withAug.pytorch }).map(([id, reps]) => [id, perSecond(reps)?.median ?? null]),
    );

    // ---- print -------------------------------------------------------------------------
    console.log('');
    printTable(figures);
    console.log('');
    console.log(
      `Train step arithmetic: ${macs.toLocaleString('en-US')} multiply-adds forward = ${((2 * macs) / 1e6).toFixed(2)} MFLOP/image, ` +
        `${(trainFlops / 1e6).toFixed(2)} MFLOP/image with backward; peak ${opts.peakGflops.toFixed(0)} GFLOP/s`,
    );
    console.log(`  no augmentation: torchlet ${gfText(gf.torchletNoAug)}, PyTorch ${gfText(gf.pytorchNoAug)}`);
    console.log(`  with augmentation (model only): torchlet ${gfText(gf.torchletAug)}, PyTorch best ${gfText(gf.pytorchBestAug)}`);
    console.log(
      `PyTorch training setups (images/s): ${Object.entries(pyVariantRates).map(([id, v]) => `${id} ${v === null ? '—' : int(v)}`).join(', ')}`,
    );
    console.log(`PyTorch evaluation modes (images/s): ${Object.entries(evaluation.pytorch).map(([k, v]) => `${k} ${int(median(v))}`).join(', ')}`);
    console.log(
      `CPU busy while training (cores): torchlet ${cpuPerWall.torchletNoAug.toFixed(2)} no aug, ${cpuPerWall.torchletAug.toFixed(2)} aug; ` +
        `PyTorch ${Object.entries(cpuPerWall.pytorch).map(([id, v]) => `${id} ${v.toFixed(2)}`).join(', ')} (main process only)`,
    );
    if (fullRuns.length) {
      console.log(
        `Full runs, final test accuracy: torchlet ${fullRuns.map((r) => pct(r.torchlet.finalTestAccuracy)).join(', ')}; ` +
          `PyTorch ${fullRuns.map((r) => pct(r.pytorch.finalTestAccuracy)).join(', ')}`,
      );
    }
    const misses = figures.filter((f) => verdict(f) === 'MISS').map((f) => f.id);
    console.log(misses.length ? `Targets missed: ${misses.join(', ')} (reported; a miss is not a failure)` : 'All measured targets met.');

    // ---- write -------------------------------------------------------------------------
    const machine: Machine = {
      cpu: cpu.model,
      cores,
      flags: cpu.flags,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
      libtorch: native().libtorchVersion,
      torch: hello.torch,
      torchvision: hello.torchvision,
      python: hello.python,
      numpy: hello.numpy,
      debianPackages: debianVersions(),
      pytorchDefaultThreads: hello.default_threads,
      pytorchParallelBackend: hello.parallel_backend,
      loadavgStart: loadStart,
      loadavgEnd: loadavg(),
    };
    const date = startedAt.toISOString();
    const reduced = [
      ...(opts.trainImages < 60_000 ? [`training figures over ${opts.trainImages.toLocaleString('en-US')} images per repetition`] : []),
      ...(opts.fullRunTrainImages !== undefined || opts.fullRunTestImages !== undefined
        ? [`full runs on ${opts.fullRunTrainImages ?? raw.train.count} training and ${opts.fullRunTestImages ?? raw.test.count} test images`]
        : []),
    ];
    const pkgs = machine.debianPackages;
    const caption =
      `Measured by \`npm run bench\` on ${date.slice(0, 10)}: ${machine.cpu}, ${cores} cores (${machine.flags.join(', ')}), ` +
      `${th} on both sides; Node ${machine.node} with libtorch ${pkgs['libtorch-dev'] ?? machine.libtorch} against Debian's PyTorch ` +
      `${pkgs['python3-torch'] ?? machine.torch}${machine.torchvision ? ` / torchvision ${machine.torchvision}` : ''}; ` +
      `SuperLight (${DOCUMENTED_PARAMS.super_light.toLocaleString('en-US')} parameters) on both sides. Each figure is the median of ` +
      `${opts.trainReps === opts.shortReps ? opts.trainReps : `${opts.trainReps} (training) or ${opts.shortReps} (others)`} repetitions ` +
      `alternating between the two sides after a warm-up${fullRuns.length ? ` (the full runs: ${opts.fullRunReps} repetitions, no warm-up)` : ''}, min–max in brackets; ` +
      `training repetitions are ${opts.trainImages === 60_000 ? 'one 60,000-image epoch each' : `${opts.trainImages.toLocaleString('en-US')} images each`}. ` +
      `Ratio: torchlet ÷ PyTorch (for latency and wall time lower is better).` +
      (reduced.length ? ` Reduced sizes: ${reduced.join('; ')}.` : '');
    const extra = [
      `Train step: torchlet ${gfText(gf.torchletNoAug)}, PyTorch ${gfText(gf.pytorchNoAug)}, against a peak of about ${opts.peakGflops.toFixed(0)} GFLOP/s ` +
        `(${(trainFlops / 1e6).toFixed(2)} MFLOP per image: ${macs.toLocaleString('en-US')} multiply-adds forward, backward counted as twice the forward).`,
      ...(fullRuns.length
        ? [
            '',
            `Final test accuracy per run: torchlet ${fullRuns.map((r) => pct(r.torchlet.finalTestAccuracy)).join(', ')}; ` +
              `PyTorch ${fullRuns.map((r) => pct(r.pytorch.finalTestAccuracy)).join(', ')}.`,
          ]
        : []),
      '',
      `Raw samples and every PyTorch setup tried are in [bench/results.json](bench/results.json); the method is in [bench/README.md](bench/README.md).`,
    ];
    const md = markdown(figures, `_${caption}_`, extra);
    const results = {
      schema: 1,
      mode: opts.quick ? 'quick' : 'full',
      date,
      machine,
      config: {
        threads: opts.threads,
        referenceThreads: hello.ref_threads,
        batch: BATCH,
        evalBatch: EVAL_BATCH,
        trainImagesPerRep: opts.trainImages,
        warmupImages: opts.warmImages,
        trainReps: opts.trainReps,
        shortReps: opts.shortReps,
        evalImages: opts.evalImages,
        latencyPredictionsPerRep: opts.latencyCount,
        fullRun: opts.fullRun
          ? {
              reps: opts.fullRunReps,
              epochs: opts.fullRunEpochs,
              trainImages: opts.fullRunTrainImages ?? raw.train.count,
              testImages: opts.fullRunTestImages ?? raw.test.count,
            }
          : null,
        model: { name: superLight.name, params: DOCUMENTED_PARAMS.super_light, forwardMacs: macs },
      },
      figures: figures.map((f) => ({
        id: f.id,
        title: f.title,
        unit: f.unit,
        torchlet: f.torchlet,
        pytorch: f.pytorch,
        pytorchConfig: f.pytorchConfig,
        ratio: ratioOf(f),
        comparison: comparison(f),
        target: f.target ? { ...f.target, text: targetText(f.target, f.format), verdict: verdict(f) } : null,
      })),
      details: {
        trainNoAug: noAug,
        trainAug: withAug,
        pytorchTrainSetups: pyVariantRates,
        eval: evaluation,
        predict: {
          torchletP50: latency.torchletP50,
          torchletP99: latency.torchletP99,
          pytorchP50: latency.pytorchP50,
          pytorchP99: latency.pytorchP99,
          pooled: {
            torchlet: { p50: quantile(latency.torchletAll, 0.5), p99: quantile(latency.torchletAll, 0.99) },
            pytorch: { p50: quantile(latency.pytorchAll, 0.5), p99: quantile(latency.pytorchAll, 0.99) },
          },
        },
        fullRuns,
        gflops: gf,
        cpuPerWall,
      },
      markdown: md,
    };
    writeFileSync(opts.out, `${JSON.stringify(results, null, 2)}\n`);
    const shown = (path: string): string => (relative(process.cwd(), path).startsWith('..') ? path : relative(process.cwd(), path));
    console.log(`\nwrote ${shown(opts.out)}`);
    if (opts.readme !== undefined && updateReadme(opts.readme, md)) console.log(`updated the table in ${shown(opts.readme)}`);
  } finally {
    await py.close();
    process.removeListener('exit', cleanup);
    trainSet.dispose();
    testSet.dispose();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
