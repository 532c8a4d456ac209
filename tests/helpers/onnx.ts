// Running exported models in the real runtimes: onnxruntime-web (its WebAssembly build, in
// Node) and Debian's python3-onnx checker.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { afterAll, beforeAll } from 'vitest';
import { loadRawDataset, type RawSplit } from '../../src/data/mnist.js';
import { Dataset } from '../../src/dataset.js';
import type { ModelSpec } from '../../src/spec.js';
import { ROOT } from './cli.js';

// Log-probabilities from onnxruntime-web and from libtorch differ only by float32 rounding
// in a different order of operations (and, folded, by the folding itself). Measured on the
// released weights: at most 2.3e-5 (the tests log each figure); the bound leaves 4x headroom.
export const LOGPROB_TOLERANCE = 1e-4;

export const PYTHON = '/usr/bin/python3';

/**
 * For one test file: a temp folder for exported files, and the MNIST test split (raw bytes
 * for onnxruntime-web, a Dataset for torchlet), loaded before its tests and freed after.
 */
export function exportTestBed(prefix: string): { dir: string; test: () => RawSplit; testSet: () => Dataset } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let test: RawSplit | undefined;
  let testSet: Dataset | undefined;
  beforeAll(async () => {
    test = (await loadRawDataset({})).test;
    testSet = Dataset.fromRaw(test);
  });
  afterAll(() => {
    testSet?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  const ready = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Error('the MNIST test split is loaded in beforeAll');
    return x;
  };
  return { dir, test: () => ready(test), testSet: () => ready(testSet) };
}

export const hasPythonOnnx =
  existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import onnx'], { encoding: 'utf8', timeout: 60_000 }).status === 0;

export interface CheckResult {
  file: string;
  ok: boolean;
  error?: string;
  onnx?: string;
  ir_version?: number;
  opset?: number;
  inputs?: Record<string, (string | number)[]>;
  outputs?: Record<string, (string | number)[]>;
  ops?: Record<string, number>;
  metadata?: Record<string, string>;
}

/** python/check_onnx.py on the files: the full checker and strict shape inference. */
export function checkOnnx(files: string[]): CheckResult[] {
  const r = spawnSync(PYTHON, [join(ROOT, 'python', 'check_onnx.py'), ...files], { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`check_onnx.py exited with ${r.status}: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((line) => JSON.parse(line) as CheckResult);
}

export async function session(model: Uint8Array): Promise<ort.InferenceSession> {
  // Test files run one at a time, so every core can go to the WebAssembly threads (the
  // runtime reads this once, at its first session): resnet18 on 500 images took 7.1 s on
  // one thread and 3.8 s on two.
  ort.env.wasm.numThreads = availableParallelism();
  return ort.InferenceSession.create(model);
}

/**
 * Runs `count` images through the session in batches; `images` holds uint8 pixels (fed as
 * they are, for a graph with the preprocessing baked in) or normalised floats. Returns the
 * single output, [count, classes] row-major.
 */
export async function runBatches(s: ort.InferenceSession, images: Uint8Array | Float32Array, spec: ModelSpec, count: number, batch = 500): Promise<Float32Array> {
  const { channels, height, width } = spec.input;
  const per = channels * height * width;
  const chunks: Float32Array[] = [];
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    const slice = images.subarray(start * per, (start + n) * per);
    const tensor = slice instanceof Uint8Array ? new ort.Tensor('uint8', slice, [n, channels, height, width]) : new ort.Tensor('float32', slice, [n, channels, height, width]);
    const out = await s.run({ [s.inputNames[0]!]: tensor });
    chunks.push(out[s.outputNames[0]!]!.data as Float32Array);
    // The WebAssembly run blocks the thread; give the event loop (vitest's RPC) a turn.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const all = new Float32Array(chunks.reduce((a, c) => a + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.length;
  }
  return all;
}

/** uint8 pixels -> the model's float input, as the native Normalise computes it in float32: (p / 255 - mean) / std. */
export function normalise(pixels: Uint8Array, spec: ModelSpec): Float32Array {
  const { channels, height, width, mean, std } = spec.input;
  const plane = height * width;
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const c = Math.floor(i / plane) % channels;
    const unit = Math.fround(pixels[i]! / 255);
    out[i] = mean && std ? Math.fround(Math.fround(unit - Math.fround(mean[c]!)) / Math.fround(std[c]!)) : unit;
  }
  return out;
}

/** Row-wise argmax of [rows, classes]. */
export function argmax(values: Float32Array, classes: number): Uint8Array {
  const out = new Uint8Array(values.length / classes);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (values[r * classes + c]! > values[r * classes + best]!) best = c;
    out[r] = best;
  }
  return out;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

export interface Agreement {
  maxDelta: number;
  samePredictions: boolean;
  count: number;
}

/**
 * Runs an exported file in onnxruntime-web on the first `count` images of `split` and
 * compares with torchlet's log-probabilities for the same images (`reference`, row-major).
 */
export async function agreement(
  file: Uint8Array,
  spec: ModelSpec,
  images: Uint8Array,
  reference: { logProbs: Float32Array; predictions: Uint8Array },
  options: { count: number; pixels?: boolean },
): Promise<Agreement> {
  const per = spec.input.channels * spec.input.height * spec.input.width;
  const raw = images.subarray(0, options.count * per);
  const s = await session(file);
  try {
    const out = await runBatches(s, options.pixels ? raw : normalise(raw, spec), spec, options.count);
    const classes = out.length / options.count;
    const expected = reference.logProbs.subarray(0, out.length);
    return {
      maxDelta: maxAbsDiff(out, expected),
      samePredictions: Buffer.from(argmax(out, classes)).equals(Buffer.from(reference.predictions.subarray(0, options.count))),
      count: options.count,
    };
  } finally {
    await s.release();
  }
}
