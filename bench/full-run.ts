// Figure 5: the full reference run with augmentation, torchlet's train() against
// bench/reference_train.py, wall time and final accuracy.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { Dataset, DOCUMENTED_PARAMS, Model, superLight, train } from '../src/index.js';
import { BENCH, log, pct, ROOT, SEED, type Options } from './runner.js';

export interface FullRunRep {
  torchlet: { wall: number; finalTestAccuracy: number; epochs: number };
  pytorch: { wall: number; processWall: number; finalTestAccuracy: number; epochs: number; threads: number };
}

export const RefEpoch = z.object({ epoch: z.number(), test_accuracy: z.number(), train_accuracy: z.number(), seconds: z.number() });
export const RefDone = z.object({
  done: z.literal(true),
  wall_s: z.number(),
  final_test_accuracy: z.number(),
  epochs: z.number(),
  threads: z.number(),
  params: z.number(),
});

export async function referenceRun(opts: Options, dataDir: string): Promise<FullRunRep['pytorch']> {
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

export async function torchletFullRun(opts: Options, trainSet: Dataset, testSet: Dataset): Promise<FullRunRep['torchlet']> {
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
