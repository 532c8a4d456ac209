// The shared runner of `npm run bench`: options, statistics, the long-lived PyTorch
// worker, figures with targets, and the printed and README tables. Each benchmark lives in
// its own file (train.ts, eval.ts, latency.ts, full-run.ts, serve.ts, onnx.ts, zoo.ts); run.ts runs them.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { isReferenceBlas } from '../scripts/libtorch.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BENCH = join(ROOT, 'bench');
export const README_START = '<!-- bench:start -->';
export const README_END = '<!-- bench:end -->';
export const BATCH = 128;
export const EVAL_BATCH = 1000;
export const SEED = 42;

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

export const HELP = `npm run bench [-- options]

  --quick                  tiny sizes, 1 repetition, no full run; writes bench/results.quick.json, never the README
  --threads N              intra-op threads on both sides (default: the number of cores)
  --ref-threads N          torch threads of the PyTorch reference DataLoader pipeline (default: PyTorch's default)
  --reps N                 repetitions per figure (default: 3 for training figures, 5 for the others; quick: 1)
  --train-images N         images per training repetition (default 60000: one epoch; quick: 256)
  --skip-full-run          omit figure 5 (the 15-epoch runs)
  --skip-serve             omit the serving benchmark (bench/serve.ts; alone: npm run bench:serve)
  --skip-onnx              omit the ONNX benchmark (bench/onnx.ts; alone: npm run bench:onnx)
  --skip-zoo               omit the zoo benchmark (bench/zoo.ts; alone: npm run bench:zoo)
  --full-run-reps N        repetitions of figure 5 (default 3)
  --full-run-epochs N      epochs of figure 5 (default 15; fewer only for smoke tests)
  --full-run-train-images N, --full-run-test-images N   subsets for smoke tests of figure 5
  --out FILE               results file (default bench/results.json, quick: bench/results.quick.json)
  --readme FILE            README to update between ${README_START} and ${README_END} (default README.md)
  --no-readme              do not touch the README
  --python PATH            Python with torch (default /usr/bin/python3)
  --data-dir DIR           folder holding the MNIST .gz files (default: torchlet's usual search)
  --peak-gflops X          the machine's peak for the GFLOP/s figure (default 236 per core: oneDNN's sgemm here, AVX-512)
`;

export interface Options {
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
  serve: boolean;
  onnx: boolean;
  zoo: boolean;
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

export function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`${name} must be a positive integer, got '${value}'`);
  return n;
}

/** Node's arguments for running the `torchlet` CLI of the checkout at `root` from its sources (through tsx), as users' `npx torchlet` runs. */
export function torchletCli(root: string, ...args: string[]): string[] {
  return [join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(root, 'src', 'cli', 'main.ts'), ...args];
}

/** The options every benchmark takes. */
const COMMON_OPTIONS = {
  quick: { type: 'boolean', default: false },
  out: { type: 'string' },
  readme: { type: 'string' },
  'no-readme': { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const;

/** A usage text from the option table, for the benchmarks that have no hand-written one. */
function optionsUsage(options: NonNullable<ParseArgsConfig['options']>): string {
  const script = relative(ROOT, process.argv[1] ?? 'bench');
  return `usage: npx tsx ${script} [options]\n\n${Object.entries(options)
    .map(([name, o]) => `  --${name}${o.type === 'string' ? ' VALUE' : ''}`)
    .join('\n')}\n`;
}

/**
 * parseArgs (strict) over a benchmark's own options and the common ones; and where its
 * results go: --out, else bench/RESULTS.json (bench/RESULTS.quick.json with --quick), and the
 * README to update (--readme, else README.md; none with --quick or --no-readme). --help
 * prints `usage` (else a list of the options) and exits 0; an unknown or malformed option
 * prints what is wrong and the usage, and exits 2.
 */
export function benchArgs<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, results: string, usage?: string) {
  const all = { ...COMMON_OPTIONS, ...options };
  const text = usage ?? optionsUsage(all);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, strict: true, options: all });
  } catch (err) {
    if (!(err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) throw err;
    process.stderr.write(`${err.message}\n\n${text}`);
    process.exit(2);
  }
  const { values } = parsed;
  // The generic result type does not resolve here; the common options' values are these.
  const common = values as { quick: boolean; out?: string; readme?: string; 'no-readme': boolean; help: boolean };
  if (common.help) {
    process.stdout.write(text);
    process.exit(0);
  }
  return {
    values,
    quick: common.quick,
    out: resolve(common.out ?? join(BENCH, `${results}${common.quick ? '.quick' : ''}.json`)),
    readme: common.quick || common['no-readme'] ? undefined : resolve(common.readme ?? join(ROOT, 'README.md')),
  };
}

export function parseOptions(argv: string[]): Options {
  const { values, quick, out, readme } = benchArgs(
    argv,
    {
      threads: { type: 'string' },
      'ref-threads': { type: 'string' },
      reps: { type: 'string' },
      'train-images': { type: 'string' },
      'skip-full-run': { type: 'boolean', default: false },
      'skip-serve': { type: 'boolean', default: false },
      'skip-onnx': { type: 'boolean', default: false },
      'skip-zoo': { type: 'boolean', default: false },
      'full-run-reps': { type: 'string' },
      'full-run-epochs': { type: 'string' },
      'full-run-train-images': { type: 'string' },
      'full-run-test-images': { type: 'string' },
      python: { type: 'string' },
      'data-dir': { type: 'string' },
      'peak-gflops': { type: 'string' },
    },
    'results',
    HELP,
  );
  const cores = availableParallelism();
  const reps = positiveInt('--reps', values.reps);
  const trainImages = Math.min(60_000, positiveInt('--train-images', values['train-images']) ?? (quick ? 2 * BATCH : 60_000));
  const peak = values['peak-gflops'] === undefined ? 236 * cores : Number(values['peak-gflops']);
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
    serve: !values['skip-serve'],
    onnx: !values['skip-onnx'],
    zoo: !values['skip-zoo'],
    fullRunReps: positiveInt('--full-run-reps', values['full-run-reps']) ?? 3,
    fullRunEpochs: positiveInt('--full-run-epochs', values['full-run-epochs']) ?? 15,
    fullRunTrainImages: positiveInt('--full-run-train-images', values['full-run-train-images']),
    fullRunTestImages: positiveInt('--full-run-test-images', values['full-run-test-images']),
    out,
    readme,
    python: values.python ?? '/usr/bin/python3',
    dataDir: values['data-dir'],
    peakGflops: peak,
  };
}

// ---------------------------------------------------------------------------------------
// Statistics and formatting
// ---------------------------------------------------------------------------------------

export interface Stats {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

export function stats(samples: number[]): Stats {
  if (samples.length === 0) throw new Error('no samples');
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples };
}

/** The q-th quantile (0-1) by nearest rank. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}

export const int = (x: number): string => Math.round(x).toLocaleString('en-US');
export const fixed = (digits: number) => (x: number): string => x.toFixed(digits);
export const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

// ---------------------------------------------------------------------------------------
// The PyTorch side: one long-lived process answering JSON lines (bench/peer_protocol.py)
// ---------------------------------------------------------------------------------------

export const Hello = z.object({
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
export type Hello = z.infer<typeof Hello>;
export const Reply = z.union([
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({ ok: z.literal(false), error: z.string(), traceback: z.string().optional() }),
]);

export class PythonWorker {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  private stderrTail = '';
  private failure: Error | undefined;
  private readonly script: string;

  /** `args[0]` is the script, a peer speaking bench/peer_protocol.py's line protocol. */
  constructor(python: string, args: string[]) {
    this.script = relative(ROOT, args[0] ?? '');
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
    this.proc.on('exit', (code, signal) => fail(new Error(`${python} ${args.join(' ')} exited (${signal ?? `code ${code}`}):\n${this.stderrTail}`)));
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
      throw new Error(`unexpected output from ${this.script}: ${line.slice(0, 500)}`);
    }
    if (!reply.ok) throw new Error(`PyTorch side (${this.script}), ${String(cmd.cmd)}: ${reply.error}\n${reply.traceback ?? ''}`);
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
// Machine
// ---------------------------------------------------------------------------------------

export interface Machine {
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
  /** loadedBlas(): the same library serves both sides. */
  blas: string;
  pytorchDefaultThreads: number;
  pytorchParallelBackend: string | null;
  loadavgStart: number[];
  loadavgEnd?: number[];
}

/**
 * The BLAS this process loaded through libtorch, named by its folder (Debian: `blas` is the
 * reference implementation, `openblas-openmp` OpenBLAS): it sets the speed of every fully
 * connected layer and attention product on both sides.
 */
export function loadedBlas(): string {
  let maps = '';
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return 'unknown';
  }
  const path = /\s(\/\S*\/libblas\.so[.\d]*)$/m.exec(maps)?.[1];
  if (!path) return 'none linked (MKL inside libtorch, or not Linux)';
  return isReferenceBlas(path) ? 'reference BLAS' : basename(dirname(path));
}

export function cpuInfo(): { model: string; flags: string[] } {
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

export interface Target {
  /** ratio = torchlet / PyTorch (or torchlet's value alone for the boundary share). */
  op: '>=' | '<=' | '<';
  value: number;
  on: 'ratio' | 'torchlet';
}

export interface Figure {
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

export const ratioOf = (f: Figure): number | null =>
  f.torchlet && f.pytorch && f.compare !== 'difference' ? f.torchlet.median / f.pytorch.median : null;

export function comparison(f: Figure): string {
  if (!f.torchlet || !f.pytorch) return '—';
  if (f.compare === 'difference') {
    const d = 100 * (f.torchlet.median - f.pytorch.median);
    return `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(2)} pts`;
  }
  return `${(f.torchlet.median / f.pytorch.median).toFixed(2)}x`;
}

export function verdict(f: Figure): 'PASS' | 'MISS' | 'n/a' | '' {
  if (!f.target) return '';
  const x = f.target.on === 'ratio' ? ratioOf(f) : (f.torchlet?.median ?? null);
  if (x === null) return 'n/a';
  const ok = f.target.op === '>=' ? x >= f.target.value : f.target.op === '<=' ? x <= f.target.value : x < f.target.value;
  return ok ? 'PASS' : 'MISS';
}

export function targetText(t: Target | undefined, format: (x: number) => string): string {
  if (!t) return '';
  const op = { '>=': '≥', '<=': '≤', '<': '<' }[t.op];
  return t.on === 'ratio' ? `${op} ${t.value}x` : `${op} ${format(t.value)}`;
}

export const cell = (s: Stats | null, format: (x: number) => string, range = true): string =>
  s === null ? '—' : range && s.samples.length > 1 ? `${format(s.median)} (${format(s.min)}–${format(s.max)})` : format(s.median);

export interface Side {
  label: string;
  warm: () => Promise<void>;
  rep: (i: number) => Promise<number>;
}

/** Warm-up on every side, then `reps` rounds of one repetition per side, in turn. */
export async function alternate(name: string, reps: number, sides: Side[], format: (x: number) => string, unit: string): Promise<number[][]> {
  for (const side of sides) await side.warm();
  const results: number[][] = sides.map(() => []);
  for (let r = 0; r < reps; r++) {
    const parts: string[] = [];
    for (const i of turnOrder(sides.length, r)) {
      const side = sides[i] as Side;
      const x = await side.rep(r);
      results[i]?.push(x);
      parts.push(`${side.label} ${format(x)}`);
    }
    log(`  ${name} rep ${r + 1}/${reps}: ${parts.join(' | ')} ${unit}`);
  }
  return results;
}

/**
 * The order of n sides in repetition r: a Williams design (a Latin square whose rows also
 * balance neighbours), so that over a cycle of n repetitions (2n when n is odd) every side
 * runs in every position, and right after every other side, equally often. A fixed order lets
 * a side inherit its predecessor's cache, allocator and clock state every time, which faked a
 * 12% effect in one zoo ablation.
 */
export function turnOrder(n: number, r: number): number[] {
  const base = Array.from({ length: n }, (_, k) => (k % 2 === 1 ? (k + 1) / 2 : (n - k / 2) % n));
  const row = base.map((b) => (b + r) % n);
  return n % 2 === 1 && r % (2 * n) >= n ? row.reverse() : row;
}

export const T0 = performance.now();

/** Progress on stderr; the phase lines carry the seconds since start. */
export function log(line: string): void {
  process.stderr.write(`${/^\[\d\/\d\]/.test(line) ? `${((performance.now() - T0) / 1000).toFixed(1).padStart(6)}s ` : ''}${line}\n`);
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

export function printTable(figures: Figure[]): void {
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

export function markdown(figures: Figure[], caption: string, extra: string[]): string {
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

/** Writes `table` between the markers (default: the main table's) of the README. */
export function updateReadme(path: string, table: string, startMarker = README_START, endMarker = README_END): boolean {
  if (!existsSync(path)) {
    log(`warning: ${path} does not exist; the table was not written`);
    return false;
  }
  const text = readFileSync(path, 'utf8');
  const start = text.indexOf(startMarker);
  const end = text.indexOf(endMarker);
  if (start < 0 || end < start) {
    log(`warning: ${path} has no ${startMarker} ... ${endMarker} markers; the table was not written`);
    return false;
  }
  const next = `${text.slice(0, start + startMarker.length)}\n${table.trimEnd()}\n${text.slice(end)}`;
  const tmp = `${path}.tmp-bench-${process.pid}`;
  writeFileSync(tmp, next);
  renameSync(tmp, path);
  return true;
}

export const threadsText = (n: number): string => (n === 1 ? '1 thread' : `${n} threads`);

export function debianVersions(): Record<string, string> {
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
