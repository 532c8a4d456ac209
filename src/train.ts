// The training loop: one native call per epoch, then eval-mode accuracy on train and
// test (and validation), best-weights and resumable checkpoints, all saved atomically.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, type EpochStats, type NativeTrainer, type ProgressInfo } from './native.js';
import type { Dataset } from './dataset.js';
import type { Model } from './model.js';
import { REFERENCE_RECIPE, type Recipe } from './recipe.js';
import { getThreads } from './runtime.js';

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Running loss and accuracy in train mode (dropout on, augmented), as the step saw them. */
  stepLoss: number;
  stepAccuracy: number;
  lr: number;
  seconds: number;
}

export interface TrainData {
  train: Dataset;
  test: Dataset;
  /** When given, the best checkpoint is chosen by validation accuracy instead of test accuracy. */
  val?: Dataset;
}

export interface TrainOptions extends Partial<Recipe> {
  /** Apply the recipe's augmentation. */
  aug?: boolean;
  /** Where to save the best weights (a PyTorch-loadable state_dict). */
  bestPath?: string;
  /** Where to save the resumable checkpoint after every epoch. */
  checkpointPath?: string;
  /** Continue from a checkpoint written by an earlier run with the same options. */
  resume?: string;
  /** Batch size for the evaluation passes. */
  evalBatchSize?: number;
  /** Skip evaluating the training set after each epoch (it costs about a fifth of an epoch). */
  skipTrainEval?: boolean;
  onProgress?: (epoch: number, p: ProgressInfo) => void;
  /** Awaited after every epoch; throwing stops training (a tuner's pruner does this). */
  onEpoch?: (record: EpochRecord) => void | Promise<void>;
  /** Called once after a resume with the epochs the checkpoint already holds. */
  onResume?: (history: EpochRecord[]) => void;
  /** Record the run in a run store (see src/store): its config, every epoch, the best weights and the checkpoint. */
  store?: RunSink;
  /** The store's experiment and run name for this run. */
  experiment?: string;
  runName?: string;
  /** The config to record (default: the model, aug and the resolved recipe). */
  config?: Record<string, unknown>;
  /** Record into a run that already exists (a worker's claimed run); its caller finishes it. */
  recorder?: RunRecorder;
}

/** Receives each epoch of a recorded run. */
export interface RunRecorder {
  readonly runId: string;
  /** After an epoch, once its checkpoint and (when the epoch is the best so far) the best weights are on disk. */
  epoch(record: EpochRecord, files?: { checkpoint?: string; best?: string }): Promise<void>;
}

/** A run that train() started, and so also ends. */
export interface OwnedRun extends RunRecorder {
  finish(result: TrainResult): Promise<void>;
  fail(error: unknown): Promise<void>;
}

export interface RunStart {
  model: string;
  params: number;
  device: string;
  threads: number;
  config: Record<string, unknown>;
  experiment?: string;
  name?: string;
}

/** What train() needs of a run store. */
export interface RunSink {
  startRun(start: RunStart): Promise<OwnedRun>;
}

export interface TrainResult {
  history: EpochRecord[];
  best: { epoch: number; accuracy: number; by: 'test' | 'val' };
  final: EpochRecord;
  /** The run's id when it was recorded in a store. */
  runId?: string;
}

interface CheckpointMeta {
  version: 1;
  epochsDone: number;
  history: EpochRecord[];
  best: TrainResult['best'] | null;
  recipe: Recipe & { aug: boolean };
}

export function resolveRecipe(options: Partial<Recipe>): Recipe {
  const recipe = { ...REFERENCE_RECIPE };
  for (const [key, value] of Object.entries(options) as [keyof Recipe, Recipe[keyof Recipe] | undefined][]) {
    if (value !== undefined && key in recipe) Object.assign(recipe, { [key]: value });
  }
  for (const key of ['epochs', 'batchSize'] as const) {
    if (!Number.isInteger(recipe[key]) || recipe[key] <= 0) throw new RangeError(`${key} must be a positive integer, got ${recipe[key]}`);
  }
  for (const key of ['lr', 'maxLr'] as const) {
    if (!Number.isFinite(recipe[key]) || recipe[key] <= 0) throw new RangeError(`${key} must be a positive number, got ${recipe[key]}`);
  }
  if (!Number.isFinite(recipe.weightDecay) || recipe.weightDecay < 0) throw new RangeError(`weightDecay must be >= 0, got ${recipe.weightDecay}`);
  if (!Number.isInteger(recipe.seed) || recipe.seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${recipe.seed}`);
  return recipe;
}

export function createTrainer(model: Model, recipe: Recipe, aug: boolean, trainSize: number): NativeTrainer {
  const stepsPerEpoch = Math.ceil(trainSize / recipe.batchSize);
  return new (native().Trainer)(model.handle, {
    optimizer: { type: 'adamw', lr: recipe.lr, weightDecay: recipe.weightDecay, betas: [recipe.maxMomentum, recipe.beta2] },
    scheduler: {
      type: 'onecycle',
      maxLr: recipe.maxLr,
      totalSteps: recipe.epochs * stepsPerEpoch,
      pctStart: recipe.pctStart,
      anneal: recipe.anneal,
      divFactor: recipe.divFactor,
      finalDivFactor: recipe.finalDivFactor,
      baseMomentum: recipe.baseMomentum,
      maxMomentum: recipe.maxMomentum,
    },
    loss: 'nll',
    batchSize: recipe.batchSize,
    seed: recipe.seed,
    ...(aug && { augment: recipe.augment }),
  });
}

function sameRecipe(a: CheckpointMeta['recipe'], b: CheckpointMeta['recipe']): string | undefined {
  for (const key of Object.keys(b) as (keyof CheckpointMeta['recipe'])[]) {
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) return `${key} (checkpoint: ${JSON.stringify(a[key])}, now: ${JSON.stringify(b[key])})`;
  }
  return undefined;
}

/** Trains `model` with the reference recipe (overridable), evaluating after every epoch. */
export async function train(model: Model, data: TrainData, options: TrainOptions = {}): Promise<TrainResult> {
  const recipe = resolveRecipe(options);
  const aug = options.aug ?? false;
  const trainer = createTrainer(model, recipe, aug, data.train.size);
  const by: 'test' | 'val' = data.val ? 'val' : 'test';
  let history: EpochRecord[] = [];
  let best: TrainResult['best'] | null = null;
  let owned: OwnedRun | undefined;
  let scratch: string | undefined;
  try {
    owned =
      options.recorder === undefined && options.store !== undefined
        ? await options.store.startRun({
            model: model.spec.name,
            params: model.numParams(),
            device: model.device,
            threads: getThreads(),
            config: options.config ?? { model: model.spec.name, aug, ...recipe },
            ...(options.experiment !== undefined && { experiment: options.experiment }),
            ...(options.runName !== undefined && { name: options.runName }),
          })
        : undefined;
  } catch (err) {
    trainer.dispose();
    throw err;
  }
  const recorder = options.recorder ?? owned;
  // A recorded run keeps its best weights and checkpoint in the store, so it needs them on disk even when the caller did not ask.
  if (recorder !== undefined && (options.bestPath === undefined || options.checkpointPath === undefined)) scratch = mkdtempSync(join(tmpdir(), 'torchlet-run-'));
  const bestPath = options.bestPath ?? (scratch && join(scratch, 'best.pt'));
  const checkpointPath = options.checkpointPath ?? (scratch && join(scratch, 'checkpoint.ckpt'));
  try {
    if (options.resume !== undefined) {
      if (!existsSync(options.resume)) throw new Error(`cannot resume: checkpoint '${options.resume}' does not exist`);
      let meta: CheckpointMeta;
      try {
        meta = JSON.parse(trainer.loadState(options.resume)) as CheckpointMeta;
      } catch (err) {
        throw new Error(`cannot resume from '${options.resume}': ${err instanceof Error ? err.message : String(err)}`);
      }
      const mismatch = sameRecipe(meta.recipe, { ...recipe, aug });
      if (mismatch !== undefined) throw new Error(`cannot resume from '${options.resume}': it was trained with a different ${mismatch}`);
      history = meta.history;
      best = meta.best;
      options.onResume?.(history);
      if (owned !== undefined) for (const r of history) await owned.epoch(r);
    }
    const evalOpts = { batchSize: options.evalBatchSize ?? 1000 };
    for (let epoch = history.length; epoch < recipe.epochs; epoch++) {
      const stats: EpochStats = await trainer.trainEpoch(data.train.handle, epoch, (p) => options.onProgress?.(epoch, p));
      const start = performance.now();
      const trainEval = options.skipTrainEval ? undefined : await model.evaluate(data.train, evalOpts);
      const testEval = await model.evaluate(data.test, evalOpts);
      const valEval = data.val ? await model.evaluate(data.val, evalOpts) : undefined;
      const record: EpochRecord = {
        epoch: epoch + 1,
        trainLoss: trainEval?.loss ?? stats.loss,
        trainAccuracy: trainEval?.accuracy ?? stats.accuracy,
        testLoss: testEval.loss,
        testAccuracy: testEval.accuracy,
        ...(valEval && { valLoss: valEval.loss, valAccuracy: valEval.accuracy }),
        stepLoss: stats.loss,
        stepAccuracy: stats.accuracy,
        lr: stats.lr,
        seconds: stats.seconds + (performance.now() - start) / 1000,
      };
      history.push(record);
      const score = valEval ? valEval.accuracy : testEval.accuracy;
      const improved = best === null || score > best.accuracy;
      if (improved) {
        best = { epoch: epoch + 1, accuracy: score, by };
        if (bestPath !== undefined) model.save(bestPath);
      }
      if (checkpointPath !== undefined) {
        const meta: CheckpointMeta = { version: 1, epochsDone: epoch + 1, history, best, recipe: { ...recipe, aug } };
        trainer.saveState(checkpointPath, JSON.stringify(meta));
      }
      await recorder?.epoch(record, { ...(checkpointPath !== undefined && { checkpoint: checkpointPath }), ...(improved && bestPath !== undefined && { best: bestPath }) });
      await options.onEpoch?.(record);
    }
    const final = history.at(-1);
    if (final === undefined || best === null) throw new Error('training ran no epochs');
    const result: TrainResult = { history, best, final, ...(recorder && { runId: recorder.runId }) };
    await owned?.finish(result);
    return result;
  } catch (err) {
    await owned?.fail(err).catch(() => undefined);
    throw err;
  } finally {
    trainer.dispose();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  }
}
