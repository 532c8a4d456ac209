// The ONNX benchmark (issue 14): the exported model in onnxruntime-web (its WebAssembly
// build, in Node, as a browser runs it) beside torchlet's native inference, same weights,
// same images, same thread count, alternating repetitions after a warm-up. A reference
// point, not a target. `npm run bench` runs it after the serving benchmark.
//
//   npm run bench:onnx                     # SuperLight and the zoo's simple_conv_net; 5 reps; bench/results-onnx.json, README table
//   npm run bench:onnx -- --quick          # smoke run: 1 rep, few images; README untouched
//   npm run bench:onnx -- --threads 1 --models super_light,light --no-readme
//
// Both sides take uint8 pixels: torchlet's predict/logProbs normalise natively, and the
// ONNX file is exported with includePreprocessing, so neither pays for JavaScript work the
// other skips.
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-web';
import { loadRawDataset } from '../src/data/mnist.js';
import { Model, setThreads, toOnnx, models as reference } from '../src/index.js';
import { isModelName, models, type ModelName } from '../src/zoo/index.js';
import { releasedWeightsPath } from '../src/weights.js';
import { BENCH, alternate, benchArgs, cpuInfo, fixed, int, log, median, positiveInt, quantile, threadsText, updateReadme } from './runner.js';

const README_START = '<!-- bench:onnx:start -->';
const README_END = '<!-- bench:onnx:end -->';
const BATCH = 256;
const PIXELS = 28 * 28;

export interface OnnxBenchOptions {
  quick: boolean;
  threads: number;
  reps: number;
  /** Single-image predictions per repetition. */
  latencyCount: number;
  /** Batches of 256 per repetition. */
  batches: number;
  models: ModelName[];
  out: string;
  readme: string | undefined;
}

export const ONNX_HELP = `npm run bench:onnx [-- options]

  single-image latency and batch-${BATCH} throughput, torchlet native vs onnxruntime-web (WebAssembly, in Node)
  --quick            1 repetition, 20 predictions and 2 batches; bench/results-onnx.quick.json, README untouched
  --threads N        intra-op threads on both sides (default: the number of cores)
  --reps N           repetitions (default 5; quick: 1)
  --models a,b       built-in models (default super_light,simple_conv_net; known: ${Object.keys(models).join(', ')})
  --out FILE         results file (default bench/results-onnx.json)
  --readme FILE      README to update between ${README_START} and ${README_END} (default README.md)
  --no-readme        do not touch the README
`;

export function parseOnnxOptions(argv: string[]): OnnxBenchOptions {
  const { values, quick, out, readme } = benchArgs(
    argv,
    { threads: { type: 'string' }, reps: { type: 'string' }, models: { type: 'string' } },
    'results-onnx',
    ONNX_HELP,
  );
  const names = (values.models ?? 'super_light,simple_conv_net').split(',').map((s) => s.trim());
  for (const n of names) if (!isModelName(n)) throw new RangeError(`--models: unknown model '${n}' (known: ${Object.keys(models).join(', ')})`);
  return {
    quick,
    threads: positiveInt('--threads', values.threads) ?? availableParallelism(),
    reps: positiveInt('--reps', values.reps) ?? (quick ? 1 : 5),
    latencyCount: quick ? 20 : 500,
    batches: quick ? 2 : 20,
    models: names as ModelName[],
    out,
    readme,
  };
}

interface Runner {
  /** One image, uint8 pixels; resolves when its scores are back. */
  one(image: Uint8Array): unknown;
  /** BATCH images. */
  batch(images: Uint8Array): unknown;
}

interface ModelResult {
  model: string;
  params: number;
  onnxBytes: number;
  latencyUs: Record<'torchlet' | 'onnxruntimeWeb', { p50: number[]; p99: number[] }>;
  batchImagesPerSecond: Record<'torchlet' | 'onnxruntimeWeb', number[]>;
}

async function timeLatency(side: Runner, images: Uint8Array[], count: number): Promise<number[]> {
  const us: number[] = [];
  for (let i = 0; i < count; i++) {
    const image = images[i % images.length];
    if (image === undefined) throw new Error('no images to time');
    const t0 = process.hrtime.bigint();
    await side.one(image);
    us.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  return us;
}

async function timeBatches(side: Runner, batch: Uint8Array, count: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await side.batch(batch);
  return (count * BATCH) / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function benchModel(name: ModelName, opts: OnnxBenchOptions, pixels: Uint8Array): Promise<ModelResult> {
  const spec = models[name];
  // Zoo models have no released weights; seeded random ones cost the same to run.
  const model = Object.hasOwn(reference, name) ? Model.fromFile(spec, releasedWeightsPath(name as keyof typeof reference)) : new Model(spec, { seed: 0 });
  const onnx = toOnnx(spec, model.stateTensors(), { includePreprocessing: true });
  const session = await ort.InferenceSession.create(onnx);
  const [input] = session.inputNames;
  if (input === undefined) throw new Error('the exported model has no input');
  const images = Array.from({ length: 1000 }, (_, i) => pixels.slice(i * PIXELS, (i + 1) * PIXELS));
  const batch = pixels.slice(0, BATCH * PIXELS);
  const torchlet: Runner = { one: (x) => model.predict(x), batch: (x) => model.logProbs(x) };
  const web: Runner = {
    one: (x) => session.run({ [input]: new ort.Tensor('uint8', x, [1, 1, 28, 28]) }),
    batch: (x) => session.run({ [input]: new ort.Tensor('uint8', x, [BATCH, 1, 28, 28]) }),
  };
  const result: ModelResult = {
    model: name,
    params: model.numParams(),
    onnxBytes: onnx.length,
    latencyUs: { torchlet: { p50: [], p99: [] }, onnxruntimeWeb: { p50: [], p99: [] } },
    batchImagesPerSecond: { torchlet: [], onnxruntimeWeb: [] },
  };
  try {
    // One repetition of a side is its latency loop then its batch loop; the shared runner
    // warms each side up (first calls pay for allocation and onnxruntime's kernel
    // selection) and alternates torchlet, onnxruntime-web, torchlet, ...
    const side = (label: string, key: 'torchlet' | 'onnxruntimeWeb', runner: Runner) => ({
      label,
      warm: async () => {
        await timeLatency(runner, images, Math.ceil(opts.latencyCount / 5));
        await timeBatches(runner, batch, 1);
      },
      rep: async () => {
        const us = await timeLatency(runner, images, opts.latencyCount);
        result.latencyUs[key].p50.push(quantile(us, 0.5));
        result.latencyUs[key].p99.push(quantile(us, 0.99));
        result.batchImagesPerSecond[key].push(await timeBatches(runner, batch, opts.batches));
        return quantile(us, 0.5);
      },
    });
    await alternate(`${name} one image p50`, opts.reps, [side('torchlet', 'torchlet', torchlet), side('onnxruntime-web', 'onnxruntimeWeb', web)], fixed(0), 'µs');
    log(`  ${name} batch ${BATCH}: torchlet ${result.batchImagesPerSecond.torchlet.map(int).join(', ')} img/s; onnxruntime-web ${result.batchImagesPerSecond.onnxruntimeWeb.map(int).join(', ')} img/s`);
  } finally {
    await session.release();
    model.dispose();
  }
  return result;
}

function onnxMarkdown(results: ModelResult[], opts: OnnxBenchOptions, load: number[]): string {
  const slower = (web: number, native: number): string => `${(web / native).toFixed(2)}x`;
  const lines = [
    `_Measured by \`npm run bench:onnx\` on ${new Date().toISOString().slice(0, 10)}: ${cpuInfo().model}, ${availableParallelism()} cores, ` +
      `${threadsText(opts.threads)} on both sides; onnxruntime-web ${ort.env.versions.web ?? '?'} (WebAssembly, in Node ${process.version}) against torchlet's ` +
      `native inference, uint8 pixels in on both sides; median of ${opts.reps} alternating repetitions of ${opts.latencyCount} single-image predictions ` +
      `and ${opts.batches} batches of ${BATCH}. Load average at the end: ${load.map(fixed(2)).join(' ')}${(load[0] ?? 0) > 0.5 * availableParallelism() ? ' (a busy machine: read the ratios, not the absolute figures)' : ''}. A reference point, not a target._`,
    '',
    '| model | figure | torchlet native | onnxruntime-web (WASM) | onnxruntime-web ÷ torchlet |',
    '|---|---|---:|---:|---:|',
  ];
  for (const r of results) {
    const l = r.latencyUs;
    const b = r.batchImagesPerSecond;
    const [tp50, wp50, tp99, wp99] = [l.torchlet.p50, l.onnxruntimeWeb.p50, l.torchlet.p99, l.onnxruntimeWeb.p99].map(median) as [number, number, number, number];
    const [tb, wb] = [median(b.torchlet), median(b.onnxruntimeWeb)];
    const name = `${r.model} (${r.params.toLocaleString('en-US')} params, ONNX ${(r.onnxBytes / 1024).toFixed(1)} KB)`;
    lines.push(`| ${name} | one image, p50 (µs) | ${int(tp50)} | ${int(wp50)} | ${slower(wp50, tp50)} |`);
    lines.push(`| ${r.model} | one image, p99 (µs) | ${int(tp99)} | ${int(wp99)} | ${slower(wp99, tp99)} |`);
    lines.push(`| ${r.model} | batch ${BATCH} (images/s) | ${int(tb)} | ${int(wb)} | ${slower(wb, tb)} |`);
  }
  lines.push('', 'Every repetition is in [bench/results-onnx.json](bench/results-onnx.json).');
  return lines.join('\n');
}

export async function onnxBenchmark(opts: OnnxBenchOptions): Promise<{ results: ModelResult[]; markdown: string }> {
  setThreads(opts.threads);
  ort.env.wasm.numThreads = opts.threads;
  log(`onnx benchmark: ${opts.models.join(', ')}, ${threadsText(opts.threads)} on both sides, ${opts.reps} rep(s)`);
  const { test } = await loadRawDataset({});
  const results: ModelResult[] = [];
  for (const name of opts.models) results.push(await benchModel(name, opts, test.images));
  const load = loadavg();
  const markdown = onnxMarkdown(results, opts, load);
  console.log(`\n${markdown}\n`);
  writeFileSync(
    opts.out,
    `${JSON.stringify({ schema: 1, mode: opts.quick ? 'quick' : 'full', date: new Date().toISOString(), machine: { cpu: cpuInfo().model, cores: availableParallelism(), node: process.version, loadavgEnd: load }, config: { threads: opts.threads, reps: opts.reps, latencyCount: opts.latencyCount, batches: opts.batches, batch: BATCH }, onnxruntimeWeb: ort.env.versions.web, results, markdown }, null, 2)}\n`,
  );
  log(`wrote ${opts.out}`);
  if (opts.readme !== undefined && updateReadme(opts.readme, markdown, README_START, README_END)) log(`updated the ONNX table in ${opts.readme}`);
  return { results, markdown };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(BENCH, 'onnx.ts')) {
  onnxBenchmark(parseOnnxOptions(process.argv.slice(2))).then(
    // onnxruntime-web's WebAssembly runtime keeps the event loop alive after its sessions
    // are released, so the benchmark ends itself once the results are written.
    () => process.exit(),
    (err: unknown) => {
      process.stderr.write(`bench:onnx failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
