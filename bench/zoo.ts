// `npm run bench:zoo` (also run by `npm run bench`): training and evaluation speed of the
// zoo's models against Debian's PyTorch on the same machine and threads, in one run.
// Training: images/s at batch 64 (SGD with momentum); evaluation: images/s at batch 256.
// Issue 12's targets: training at least 1.2x PyTorch for the convolutional models and
// 1.0x for the ViT, evaluation at least 1.1x for every model. Medians of repetitions;
// the two sides run back to back per model.
//
//   npm run bench:zoo                    # 3 repetitions, writes bench/zoo-results.json
//   npm run bench:zoo -- --quick         # 1 repetition, fewer steps (smoke run)
//   npm run bench:zoo -- --models vit,resnet18
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Dataset, getThreads, Model, native, setThreads, zoo, type ZooName } from '../src/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MODELS: ZooName[] = ['simple_conv_net', 'parallel_cnn', 'vit', 'resnet18', 'mobilenet_v2'];
const CONVOLUTIONAL = new Set<ZooName>(['simple_conv_net', 'parallel_cnn', 'resnet18', 'mobilenet_v2']);
const TRAIN_BATCH = 64;
const EVAL_BATCH = 256;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    models: { type: 'string' },
    threads: { type: 'string' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const names = (values.models?.split(',') ?? MODELS) as ZooName[];
for (const n of names) if (!Object.hasOwn(zoo, n)) throw new Error(`unknown zoo model '${n}'`);
if (values.threads) setThreads(Number(values.threads));
const threads = getThreads();
const reps = values.quick ? 1 : 3;
const trainSteps = values.quick ? 3 : 12;
const evalImages = values.quick ? 512 : 2048;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

function images(n: number, seed: number): Dataset {
  let s = seed;
  const pixels = new Uint8Array(n * 784).map(() => ((s = (s * 1103515245 + 12345) >>> 0) >>> 24) & 0xff);
  const labels = new Uint8Array(n).map((_, i) => i % 10);
  return Dataset.fromArrays(pixels, labels, [n, 1, 28, 28]);
}

async function torchlet(name: ZooName): Promise<{ train: number[]; eval: number[] }> {
  const model = new Model(zoo[name](), { seed: 0 });
  const trainSet = images(TRAIN_BATCH * trainSteps, 1);
  const warm = trainSet.slice(0, TRAIN_BATCH * 2);
  const evalSet = images(evalImages, 2);
  const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'sgd', lr: 0.01, momentum: 0.9 }, batchSize: TRAIN_BATCH, seed: 1 });
  const out = { train: [] as number[], eval: [] as number[] };
  try {
    await trainer.trainEpoch(warm.handle, 0);
    await model.evaluate(evalSet.slice(0, EVAL_BATCH), { batchSize: EVAL_BATCH });
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      const e = await trainer.trainEpoch(trainSet.handle, r + 1);
      out.train.push(e.samples / ((performance.now() - t0) / 1000));
      const t1 = performance.now();
      const ev = await model.evaluate(evalSet, { batchSize: EVAL_BATCH });
      out.eval.push(ev.count / ((performance.now() - t1) / 1000));
    }
  } finally {
    trainer.dispose();
    model.dispose();
    for (const d of [trainSet, warm, evalSet]) d.dispose();
  }
  return out;
}

function pytorch(name: ZooName): { train: number[]; eval: number[] } {
  const request = { model: name, threads, train_batch: TRAIN_BATCH, train_steps: trainSteps, eval_batch: EVAL_BATCH, eval_images: evalImages, reps };
  const r = spawnSync(values.python, [join(ROOT, 'bench', 'zoo_peer.py')], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: join(ROOT, 'python'), PYTHONDONTWRITEBYTECODE: '1' },
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`${values.python} bench/zoo_peer.py (${name}) failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as { train: number[]; eval: number[] };
}

const rows = [];
console.log(`zoo benchmark: ${threads} threads, train batch ${TRAIN_BATCH}, eval batch ${EVAL_BATCH}, ${reps} repetition(s), load ${loadavg()[0]?.toFixed(2)}`);
for (const name of names) {
  const ours = await torchlet(name);
  const theirs = pytorch(name);
  const row = {
    model: name,
    train: { torchlet: median(ours.train), pytorch: median(theirs.train), target: CONVOLUTIONAL.has(name) ? 1.2 : 1.0 },
    eval: { torchlet: median(ours.eval), pytorch: median(theirs.eval), target: 1.1 },
    samples: { torchlet: ours, pytorch: theirs },
  };
  rows.push(row);
  const fmt = (f: { torchlet: number; pytorch: number; target: number }) => {
    const ratio = f.torchlet / f.pytorch;
    return `${f.torchlet.toFixed(0)} vs ${f.pytorch.toFixed(0)} img/s = ${ratio.toFixed(2)}x (target ${f.target}x: ${ratio >= f.target ? 'PASS' : 'MISS'})`;
  };
  console.log(`${name.padEnd(16)} train ${fmt(row.train)} | eval ${fmt(row.eval)}`);
}
const out = join(ROOT, 'bench', values.quick ? 'zoo-results.quick.json' : 'zoo-results.json');
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), threads, loadavg: loadavg(), rows }, null, 2) + '\n');
console.log(`wrote ${out}`);
