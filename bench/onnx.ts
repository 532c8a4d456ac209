// `npm run bench:onnx`: the exported ONNX model in onnxruntime-web (its WebAssembly build,
// in Node, as a browser would run it) beside torchlet's native inference, same weights,
// same images, same thread count, alternating repetitions. A reference point, not a target.
//
//   npm run bench:onnx                     # SuperLight; 5 repetitions; bench/results.onnx.json
//   npm run bench:onnx -- --quick          # smoke run: 1 repetition, few images
//   npm run bench:onnx -- --threads 1 --models super_light,light
//
// Both sides take uint8 pixels: torchlet's predict/logProbs normalise natively, and the
// ONNX file is exported with --include-preprocessing, so neither pays for JavaScript work
// the other skips.
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-web';
import { loadRawDataset } from '../src/data/mnist.js';
import { Model, isModelName, models, setThreads, toOnnx, type ModelName } from '../src/index.js';
import { releasedWeightsPath } from '../src/weights.js';

const BENCH = dirname(fileURLToPath(import.meta.url));
const BATCH = 256;

interface Options {
  quick: boolean;
  threads: number;
  reps: number;
  latencyCount: number;
  batches: number;
  models: ModelName[];
  out: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      threads: { type: 'string' },
      reps: { type: 'string' },
      models: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench:onnx [-- --quick] [--threads N] [--reps N] [--models a,b] [--out FILE]\n' +
        '  single-image latency and batch-256 throughput, torchlet native vs onnxruntime-web (WebAssembly, in Node)\n',
    );
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, fallback: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`--${name} must be a positive integer, got '${v}'`);
    return n;
  };
  const names = (values.models ?? 'super_light').split(',').map((s) => s.trim());
  for (const n of names) if (!isModelName(n)) throw new RangeError(`--models: unknown model '${n}' (known: ${Object.keys(models).join(', ')})`);
  return {
    quick: values.quick,
    threads: int('threads', values.threads, availableParallelism()),
    reps: int('reps', values.reps, values.quick ? 1 : 5),
    latencyCount: values.quick ? 20 : 500,
    batches: values.quick ? 2 : 20,
    models: names as ModelName[],
    out: resolve(values.out ?? join(BENCH, values.quick ? 'results.onnx.quick.json' : 'results.onnx.json')),
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
};
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const log = (line: string): void => void process.stderr.write(`${line}\n`);

interface Side {
  /** One image, uint8 pixels; resolves when its scores are back. */
  one(image: Uint8Array): Promise<unknown> | unknown;
  /** BATCH images. */
  batch(images: Uint8Array): Promise<unknown> | unknown;
}

interface ModelResult {
  model: string;
  params: number;
  onnxBytes: number;
  latencyUs: Record<'torchlet' | 'onnxruntimeWeb', { p50: number[]; p99: number[] }>;
  batchImagesPerSecond: Record<'torchlet' | 'onnxruntimeWeb', number[]>;
}

async function timeLatency(side: Side, images: Uint8Array[], count: number): Promise<number[]> {
  const us: number[] = [];
  for (let i = 0; i < count; i++) {
    const image = images[i % images.length] ?? images[0];
    if (image === undefined) throw new Error('no images to time');
    const t0 = process.hrtime.bigint();
    await side.one(image);
    us.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  return us;
}

async function timeBatches(side: Side, batch: Uint8Array, count: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await side.batch(batch);
  return (count * BATCH) / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function benchModel(name: ModelName, opts: Options, pixels: Uint8Array): Promise<ModelResult> {
  const spec = models[name];
  const model = Model.fromFile(spec, releasedWeightsPath(name));
  const onnx = toOnnx(spec, model.stateTensors(), { includePreprocessing: true });
  const session = await ort.InferenceSession.create(onnx);
  const [input] = session.inputNames;
  if (input === undefined) throw new Error('the exported model has no input');
  const per = 784;
  const images = Array.from({ length: 1000 }, (_, i) => pixels.slice(i * per, (i + 1) * per));
  const batch = pixels.slice(0, BATCH * per);
  const torchlet: Side = { one: (x) => model.predict(x), batch: (x) => model.logProbs(x) };
  const web: Side = {
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
    // Warm-up: first calls pay for allocation and (onnxruntime) kernel selection.
    for (const side of [torchlet, web]) {
      await timeLatency(side, images, Math.ceil(opts.latencyCount / 5));
      await timeBatches(side, batch, 1);
    }
    for (let r = 0; r < opts.reps; r++) {
      for (const [key, side] of [['torchlet', torchlet], ['onnxruntimeWeb', web]] as const) {
        const us = await timeLatency(side, images, opts.latencyCount);
        result.latencyUs[key].p50.push(quantile(us, 0.5));
        result.latencyUs[key].p99.push(quantile(us, 0.99));
        result.batchImagesPerSecond[key].push(await timeBatches(side, batch, opts.batches));
      }
      const last = (xs: number[]): string => (xs.at(-1) ?? NaN).toFixed(0);
      log(
        `  ${name} rep ${r + 1}/${opts.reps}: one image p50 torchlet ${last(result.latencyUs.torchlet.p50)} µs, ` +
          `onnxruntime-web ${last(result.latencyUs.onnxruntimeWeb.p50)} µs; batch ${BATCH} torchlet ` +
          `${last(result.batchImagesPerSecond.torchlet)} img/s, onnxruntime-web ${last(result.batchImagesPerSecond.onnxruntimeWeb)} img/s`,
      );
    }
  } finally {
    await session.release();
    model.dispose();
  }
  return result;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  setThreads(opts.threads);
  ort.env.wasm.numThreads = opts.threads;
  const load = loadavg()[0] ?? 0;
  log(`onnx bench (${opts.quick ? 'quick' : 'full'}): ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, ${opts.threads} thread(s) on both sides, load ${load.toFixed(2)}`);
  if (load > 0.5 * availableParallelism()) log('warning: the machine is busy; absolute figures will be noisy (the same-run ratios less so)');
  const { test } = await loadRawDataset({});
  const results: ModelResult[] = [];
  for (const name of opts.models) results.push(await benchModel(name, opts, test.images));

  const rows = results.flatMap((r) => {
    const l = r.latencyUs;
    const b = r.batchImagesPerSecond;
    return [
      `| ${r.model} | one image, p50 (µs) | ${median(l.torchlet.p50).toFixed(0)} | ${median(l.onnxruntimeWeb.p50).toFixed(0)} | ${(median(l.onnxruntimeWeb.p50) / median(l.torchlet.p50)).toFixed(2)}x |`,
      `| ${r.model} | one image, p99 (µs) | ${median(l.torchlet.p99).toFixed(0)} | ${median(l.onnxruntimeWeb.p99).toFixed(0)} | ${(median(l.onnxruntimeWeb.p99) / median(l.torchlet.p99)).toFixed(2)}x |`,
      `| ${r.model} | batch ${BATCH} (img/s) | ${median(b.torchlet).toFixed(0)} | ${median(b.onnxruntimeWeb).toFixed(0)} | ${(median(b.torchlet) / median(b.onnxruntimeWeb)).toFixed(2)}x |`,
    ];
  });
  const table = [
    '| model | figure | torchlet native | onnxruntime-web (WASM) | onnxruntime-web is slower by |',
    '| --- | --- | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
  process.stdout.write(`${table}\n`);
  writeFileSync(
    opts.out,
    `${JSON.stringify({ date: new Date().toISOString(), threads: opts.threads, reps: opts.reps, loadAverage: loadavg(), onnxruntimeWeb: ort.env.versions.web, results }, null, 2)}\n`,
  );
  log(`wrote ${opts.out}`);
}

await main();
// onnxruntime-web's WebAssembly runtime keeps the event loop alive after its sessions are
// released, so the benchmark ends itself once the results are written.
process.exit(0);
