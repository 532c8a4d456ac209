// The native smoke run for scripts/asan.sh: exercises every native entry point once
// (happy paths and error paths) against the addon in TORCHLET_ADDON, which the script
// builds with AddressSanitizer. Plain JavaScript on the raw binding, so that nothing but
// node and the addon runs under the sanitizer. Prints "asan-smoke: ok" at the end.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const addonPath = process.env.TORCHLET_ADDON ?? join(ROOT, 'build', 'Release', 'torchlet.node');
const b = createRequire(import.meta.url)(addonPath);
const tmp = mkdtempSync(join(tmpdir(), 'torchlet-asan-smoke-'));
let checks = 0;

function log(msg) {
  process.stdout.write(`asan-smoke: ${msg}\n`);
}

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
  checks++;
}

/** `fn` must throw an Error (not crash) whose message matches `pattern`. */
function throws(fn, pattern, what) {
  try {
    fn();
  } catch (err) {
    assert(err instanceof Error && pattern.test(err.message), `${what}: got ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  throw new Error(`${what}: did not throw`);
}

/** `fn` must throw or reject with an Error whose message matches `pattern`. */
async function rejects(fn, pattern, what) {
  try {
    await fn();
  } catch (err) {
    assert(err instanceof Error && pattern.test(err.message), `${what}: got ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  throw new Error(`${what}: did not reject`);
}

// The reference SuperLight spec, as src/models.ts builds it.
const block = (i, o, k, drop) => [
  { type: 'conv2d', in: i, out: o, kernel: k },
  { type: 'batchnorm2d', features: o },
  { type: 'relu' },
  ...(drop ? [{ type: 'dropout', p: 0.05 }] : []),
];
const INPUT = { channels: 1, height: 28, width: 28, mean: [0.1307], std: [0.3081] };
const superLight = {
  name: 'super_light',
  input: INPUT,
  layers: [
    ...block(1, 4, 3, true),
    ...block(4, 8, 3, true),
    { type: 'maxpool2d', kernel: 2 },
    ...block(8, 4, 1, false),
    ...block(4, 8, 3, true),
    ...block(8, 12, 3, true),
    ...block(12, 16, 3, false),
    { type: 'adaptiveavgpool2d', output: 3 },
    { type: 'conv2d', in: 16, out: 10, kernel: 3 },
    { type: 'flatten' },
    { type: 'logsoftmax' },
  ],
};
// Every other layer kind, including concat and nested sequentials.
const kitchenSink = {
  name: 'kitchen_sink',
  input: { channels: 1, height: 28, width: 28 },
  layers: [
    {
      type: 'concat',
      branches: [
        { type: 'sequential', layers: [{ type: 'conv2d', in: 1, out: 3, kernel: 3, padding: 1 }, { type: 'batchnorm2d', features: 3 }] },
        { type: 'conv2d', in: 1, out: 2, kernel: 1, bias: false },
      ],
    },
    { type: 'relu' },
    { type: 'dropout2d', p: 0.1 },
    { type: 'avgpool2d', kernel: 2 },
    { type: 'maxpool2d', kernel: 2, stride: 1 },
    { type: 'adaptiveavgpool2d', output: [2, 2] },
    { type: 'flatten' },
    { type: 'linear', in: 20, out: 16 },
    { type: 'dropout', p: 0.2 },
    { type: 'linear', in: 16, out: 10, bias: false },
    { type: 'logsoftmax' },
  ],
};

function readIdx(file) {
  const bytes = gunzipSync(readFileSync(file));
  const rank = bytes[3];
  const dims = Array.from({ length: rank }, (_, i) => bytes.readUInt32BE(4 + 4 * i));
  return { dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + 4 + 4 * rank, dims.reduce((a, c) => a * c, 1)) };
}

/** The first `n` MNIST training images when data/mnist is present, else a synthetic set. */
function trainingData(n) {
  const dir = join(ROOT, 'data', 'mnist');
  const images = join(dir, 'train-images-idx3-ubyte.gz');
  const labels = join(dir, 'train-labels-idx1-ubyte.gz');
  if (existsSync(images) && existsSync(labels)) {
    return { images: readIdx(images).data.slice(0, n * 784), labels: readIdx(labels).data.slice(0, n), source: 'MNIST' };
  }
  return {
    images: new Uint8Array(n * 784).map((_, i) => (i * 31) % 251),
    labels: new Uint8Array(n).map((_, i) => i % 10),
    source: 'synthetic',
  };
}

async function main() {
  log(`addon ${addonPath}, libtorch ${b.libtorchVersion}, ${b.getNumThreads()} threads`);
  b.setNumThreads(2);
  assert(b.resolveDevice('cpu') === 'cpu', 'resolveDevice');
  assert(typeof b.cudaIsAvailable() === 'boolean' && b.cudaDeviceCount() >= 0, 'cuda queries');
  throws(() => b.resolveDevice('tpu'), /device/, 'bad device');
  throws(() => b.setNumThreads(0), /threads/, 'zero threads');
  throws(() => b.setNumThreads('two'), /./, 'threads of the wrong type');

  // Datasets: construction, subsets, error paths.
  const { images, labels, source } = trainingData(1024);
  const data = new b.Dataset(images, labels, [1024, 1, 28, 28]);
  const train = data.subset(0, 768);
  const test = data.subset(768, 1024);
  assert(train.size === 768 && test.size === 256 && data.shape.join() === '1024,1,28,28', 'dataset sizes');
  throws(() => data.subset(10, 5), /outside/, 'empty subset');
  throws(() => new b.Dataset(new Uint8Array(10), new Uint8Array(1), [1, 1, 28, 28]), /needs 784/, 'short images');
  throws(() => new b.Dataset(new Uint8Array(784 * 2), new Uint8Array(3), [2, 1, 28, 28]), /3 labels/, 'label count');
  throws(() => new b.Dataset('x', new Uint8Array(1), [1, 1, 1, 1]), /Uint8Array/, 'images of the wrong type');
  throws(() => new b.Dataset(new Uint8Array(4), new Uint8Array(1), [1, 1, 2]), /shape/, 'three-dim shape');
  log(`datasets from ${source} data`);

  // Models: construction, inference, spec errors.
  const model = new b.Model(superLight, { seed: 1, device: 'cpu' });
  assert(model.numParams() === 4842, 'SuperLight has 4,842 parameters');
  assert(Object.keys(model.stateShapes()).length > 10, 'stateShapes');
  const one = model.predict(images.subarray(0, 784));
  assert(one.length === 10, 'predict one image');
  const many = model.predict(new Float32Array(3 * 784).fill(0.5));
  assert(many.length === 30, 'predict a float batch');
  throws(() => model.predict(new Uint8Array(785)), /784/, 'predict a ragged batch');
  throws(() => model.predict([1, 2, 3]), /./, 'predict a plain array');
  const sink = new b.Model(kitchenSink, { seed: 2 });
  assert(sink.predict(new Uint8Array(2 * 784)).length === 20, 'kitchen-sink model runs');
  for (const [spec, pattern] of [
    [{ ...superLight, layers: [] }, /empty/],
    [{ ...superLight, layers: [{ type: 'conv3d' }] }, /unknown layer type/],
    [{ ...superLight, layers: [{ type: 'conv2d', in: 1, out: 4, kernel: 3 }, { type: 'conv2d', in: 5, out: 2, kernel: 3 }] }, /input channels/],
    [{ ...superLight, layers: [{ type: 'conv2d', in: 1, out: 2, kernel: 99 }] }, /larger than/],
    [{ ...superLight, layers: [{ type: 'linear', in: 10, out: 2 }] }, /flatten/],
    [{ ...superLight, layers: [{ type: 'dropout', p: 2 }] }, /dropout/],
    [{ ...superLight, layers: [{ type: 'conv2d', in: '1', out: 2, kernel: 3 }] }, /number/],
    [{ ...superLight, layers: [{ type: 'concat', branches: [{ type: 'conv2d', in: 1, out: 2, kernel: 3 }, { type: 'conv2d', in: 1, out: 2, kernel: 1 }] }] }, /concat/],
    [{ ...superLight, input: { ...INPUT, mean: [0.1, 0.2] } }, /channels/],
  ]) {
    throws(() => new b.Model(spec), pattern, `bad spec ${JSON.stringify(spec.layers).slice(0, 60)}`);
  }
  log('models and spec errors');

  // Training: a real epoch with augmentation and OneCycleLR, progress callbacks, cancellation.
  const batchSize = 64;
  const stepsPerEpoch = Math.ceil(train.size / batchSize);
  const trainer = new b.Trainer(model, {
    optimizer: { type: 'adamw', lr: 0.01, weightDecay: 0.01, betas: [0.95, 0.999] },
    scheduler: { type: 'onecycle', maxLr: 0.02, totalSteps: 3 * stepsPerEpoch },
    loss: 'nll',
    batchSize,
    seed: 3,
    augment: { degrees: 10, translate: [0.1, 0.1], scale: [0.9, 1.1], shear: 5, distortion: 0.2, perspectiveP: 0.5 },
  });
  let reports = 0;
  const stats = await trainer.trainEpoch(train, 0, () => {
    reports++;
  });
  assert(stats.steps === stepsPerEpoch && Number.isFinite(stats.loss) && reports >= 1, 'an epoch trains');
  await rejects(
    () =>
      trainer.trainEpoch(train, 1, () => {
        throw new Error('boom');
      }),
    /progress callback threw: boom/,
    'a throwing progress callback',
  );
  await rejects(() => trainer.trainEpoch(train, 1, () => false), /cancelled/, 'cancelling from the callback');
  throws(() => trainer.trainEpoch(train, -1), /epoch/, 'negative epoch');
  throws(() => trainer.trainEpoch({}, 1), /Dataset/, 'training on a non-dataset');
  const wrongShape = new b.Dataset(new Uint8Array(2 * 64), new Uint8Array(2), [2, 1, 8, 8]);
  throws(() => trainer.trainEpoch(wrongShape, 1), /takes \[1, 28, 28\]/, 'training on the wrong image size');
  const sgd = new b.Trainer(sink, { optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true }, loss: 'cross_entropy', labelSmoothing: 0.1, batchSize: 128 });
  await sgd.trainEpoch(train, 0);
  sgd.dispose();
  throws(() => new b.Trainer(model, { optimizer: { type: 'adamw', lr: -1 } }), /lr/, 'negative lr');
  throws(() => new b.Trainer(model, { optimizer: { type: 'adamw', lr: 0.1 }, augment: { degrees: 500 } }), /degrees/, 'bad augmentation');
  log('training');

  // Evaluation, the schedule and augmentation helpers.
  const evalStats = await model.evaluate(test, { batchSize: 100, logProbs: true });
  assert(evalStats.count === 256 && evalStats.predictions.length === 256 && evalStats.logProbs.length === 2560, 'evaluate');
  await rejects(() => model.evaluate(wrongShape), /takes/, 'evaluate the wrong image size');
  const schedule = b.oneCycleSchedule({ maxLr: 0.1, totalSteps: 50 }, 50);
  assert(schedule.lr.length === 50 && schedule.momentum.length === 50, 'oneCycleSchedule');
  const warped = b.augmentBatch(test, 0, 8, { degrees: 15, distortion: 0.3, perspectiveP: 1 }, 9);
  assert(warped.length === 8 * 784, 'augmentBatch');
  throws(() => b.augmentBatch(test, 250, 100, {}, 1), /./, 'augmentBatch out of range');
  if (typeof b.hashDropout === 'function') {
    const probe = b.hashDropout(new Float32Array(1000).fill(1), 0.3, 5);
    assert(probe.output.length === 1000 && probe.grad.length === 1000, 'hashDropout');
    throws(() => b.hashDropout(new Float32Array(4), 1.5, 5), /p must be/, 'hashDropout with p >= 1');
  }
  log('evaluation and helpers');

  // Weights and checkpoints: round trips and every kind of bad file.
  const weights = join(tmp, 'w.pt');
  model.save(weights);
  const copy = new b.Model(superLight, { seed: 99 });
  copy.load(weights);
  const again = await copy.evaluate(test);
  assert(again.correct === evalStats.correct, 'saved weights reload to the same predictions');
  const fixture = join(ROOT, 'tests', 'fixtures', 'pytorch', 'super_light_pytorch.pt');
  if (existsSync(fixture)) copy.load(fixture);
  const bytes = readFileSync(weights);
  writeFileSync(join(tmp, 'truncated.pt'), bytes.subarray(0, bytes.length >> 1));
  writeFileSync(join(tmp, 'text.pt'), 'these are not weights\n');
  writeFileSync(join(tmp, 'empty.pt'), '');
  throws(() => copy.load(join(tmp, 'truncated.pt')), /not a readable PyTorch file/, 'truncated weights');
  throws(() => copy.load(join(tmp, 'text.pt')), /not a readable PyTorch file/, 'text weights');
  throws(() => copy.load(join(tmp, 'empty.pt')), /empty/, 'empty weights');
  throws(() => copy.load(tmp), /directory/, 'a directory as weights');
  throws(() => copy.load(join(tmp, 'missing.pt')), /cannot read/, 'missing weights');
  throws(() => sink.load(weights), /does not match this model's architecture/, 'weights of another architecture');
  const whole = join(ROOT, 'tests', 'fixtures', 'pytorch', 'whole_module.pt');
  if (existsSync(whole)) throws(() => copy.load(whole), /pickled Python object|not a state_dict|not a readable/, 'a pickled module');
  throws(() => model.save(join(tmp, 'no-such-dir', 'w.pt')), /cannot create/, 'saving into a missing folder');
  const ckpt = join(tmp, 'state.ckpt');
  trainer.saveState(ckpt, JSON.stringify({ epochs: 1 }));
  assert(JSON.parse(trainer.loadState(ckpt)).epochs === 1, 'checkpoint round trip');
  throws(() => trainer.loadState(weights), /checkpoint/, 'a .pt as a checkpoint');
  const ckptBytes = readFileSync(ckpt);
  writeFileSync(join(tmp, 'truncated.ckpt'), ckptBytes.subarray(0, ckptBytes.length >> 1));
  throws(() => trainer.loadState(join(tmp, 'truncated.ckpt')), /checkpoint/, 'a truncated checkpoint');
  const sinkTrainer = new b.Trainer(sink, { optimizer: { type: 'adamw', lr: 0.01 } });
  throws(() => sinkTrainer.loadState(ckpt), /does not fit this model and trainer/, 'a checkpoint of another architecture');
  sinkTrainer.dispose();
  log('weights and checkpoints');

  // Disposal: explicit, twice, use after dispose; and objects left to the garbage collector.
  trainer.dispose();
  trainer.dispose();
  throws(() => trainer.saveState(ckpt, ''), /disposed/, 'a disposed trainer');
  for (const m of [model, copy, sink]) m.dispose();
  model.dispose();
  throws(() => model.numParams(), /disposed/, 'a disposed model');
  for (const d of [data, train, wrongShape]) d.dispose();
  await rejects(() => copy.evaluate(test), /disposed/, 'evaluating with a disposed model');
  test.dispose();
  throws(() => test.subset(0, 1), /disposed/, 'a disposed dataset');
  for (let i = 0; i < 20; i++) {
    // Never disposed: their finalizers must free everything.
    const m = new b.Model(superLight, { seed: i });
    const t = new b.Trainer(m, { optimizer: { type: 'adamw', lr: 0.01 } });
    const d = new b.Dataset(new Uint8Array(4 * 784), new Uint8Array(4), [4, 1, 28, 28]);
    await t.trainEpoch(d, 0);
    d.subset(0, 2);
  }
  for (let i = 0; i < 5; i++) {
    globalThis.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  rmSync(tmp, { recursive: true, force: true });
  log(`ok (${checks} checks)`);
}

main().catch((err) => {
  process.stderr.write(`asan-smoke: FAILED: ${err instanceof Error ? err.stack : String(err)}\n`);
  rmSync(tmp, { recursive: true, force: true });
  process.exitCode = 1;
});
