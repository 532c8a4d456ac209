// The training loop: one native call per epoch, then eval-mode accuracy on train and
// test (and validation), best-weights and resumable checkpoints, all saved atomically.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, type EpochStats, type NativeTrainer, type ProgressInfo } from './native.js';
import type { Dataset } from './dataset.js';
import type { Model } from './model.js';
import { METRICS, REFERENCE_RECIPE, hasNormalization, metricMode, optimizerOptions, schedulerOptions, type Metric, type Recipe } from './recipe.js';
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
  /** When given, the best checkpoint is chosen by validation accuracy instead of test accuracy (or by the early-stopping metric). */
  val?: Dataset;
}

/** train() stopped because its `signal` was aborted (Ctrl-C in the CLI). */
export class TrainingAborted extends Error {}

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
  /** Aborting stops training at the next step: train() rejects with TrainingAborted, and a run it recorded ends as cancelled. */
  signal?: AbortSignal;
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
  /**
   * The best epoch by `metric` (the early-stopping metric, else val or test accuracy);
   * `accuracy` is that epoch's val (or test) accuracy.
   */
  best: { epoch: number; accuracy: number; by: 'test' | 'val'; metric: Metric; value: number };
  final: EpochRecord;
  /** The epoch after which early stopping ended the run, if it did. */
  stoppedEarly?: number;
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
  if (!(recipe.labelSmoothing >= 0 && recipe.labelSmoothing < 1)) throw new RangeError(`labelSmoothing must be within [0, 1), got ${recipe.labelSmoothing}`);
  if (recipe.ema !== null && !(recipe.ema.decay > 0 && recipe.ema.decay < 1)) throw new RangeError(`ema.decay must be within (0, 1), got ${recipe.ema.decay}`);
  if (recipe.recalibrateBatchNorm && recipe.ema !== null) throw new RangeError('recalibrateBatchNorm does not combine with ema: the EMA averages batch norm\'s statistics itself');
  const es = recipe.earlyStopping;
  if (es !== null) {
    if (!Number.isInteger(es.patience) || es.patience < 0) throw new RangeError(`earlyStopping.patience must be a non-negative integer, got ${es.patience}`);
    if (es.metric !== undefined && !METRICS.includes(es.metric)) throw new RangeError(`earlyStopping.metric must be one of ${METRICS.join(', ')}, got '${String(es.metric)}'`);
    if (es.minDelta !== undefined && !(es.minDelta >= 0)) throw new RangeError(`earlyStopping.minDelta must be >= 0, got ${es.minDelta}`);
  }
  return recipe;
}

export function createTrainer(model: Model, recipe: Recipe, aug: boolean, trainSize: number): NativeTrainer {
  const stepsPerEpoch = Math.ceil(trainSize / recipe.batchSize);
  return new (native().Trainer)(model.handle, {
    optimizer: optimizerOptions(recipe),
    scheduler: schedulerOptions(recipe, stepsPerEpoch),
    // The models end in log_softmax, which cross-entropy's own log_softmax leaves unchanged,
    // so smoothing needs no change to the model.
    loss: recipe.labelSmoothing > 0 ? 'cross_entropy' : 'nll',
    labelSmoothing: recipe.labelSmoothing,
    emaDecay: recipe.ema?.decay ?? 0,
    recalibrateBatchNorm: recipe.recalibrateBatchNorm,
    batchSize: recipe.batchSize,
    seed: recipe.seed,
    ...(aug && { augment: recipe.augment }),
  });
}

/** What decides the best epoch: the early-stopping metric, else val (or test) accuracy. */
function monitor(recipe: Recipe, hasVal: boolean): { metric: Metric; mode: 'min' | 'max'; minDelta: number } {
  const es = recipe.earlyStopping;
  const metric = es?.metric ?? (es ? 'valLoss' : hasVal ? 'valAccuracy' : 'testAccuracy');
  if (metric.startsWith('val') && !hasVal) throw new RangeError(`${es ? 'earlyStopping' : 'the best epoch'} watches ${metric}, but there is no validation set (give data.val, or --val-split)`);
  return { metric, mode: es?.mode ?? metricMode(metric), minDelta: es?.minDelta ?? 0 };
}

function metricOf(record: EpochRecord, metric: Metric): number {
  const value = record[metric];
  if (value === undefined) throw new RangeError(`epoch ${record.epoch} has no ${metric}`);
  return value;
}

function sameRecipe(a: CheckpointMeta['recipe'], b: CheckpointMeta['recipe']): string | undefined {
  for (const key of Object.keys(b) as (keyof CheckpointMeta['recipe'])[]) {
    // A checkpoint from before a field existed was trained with that field's default.
    const saved = key in a ? a[key] : (REFERENCE_RECIPE as Partial<CheckpointMeta['recipe']>)[key];
    if (JSON.stringify(saved) !== JSON.stringify(b[key])) return `${key} (checkpoint: ${JSON.stringify(saved)}, now: ${JSON.stringify(b[key])})`;
  }
  return undefined;
}

/** Trains `model` with the reference recipe (overridable), evaluating after every epoch. */
export async function train(model: Model, data: TrainData, options: TrainOptions = {}): Promise<TrainResult> {
  const recipe = resolveRecipe(options);
  const aug = options.aug ?? false;
  if (recipe.normalize !== null && !hasNormalization(model.spec, recipe.normalize)) {
    throw new RangeError(`the recipe normalises inputs as '${recipe.normalize}' but the model was not built for it: use withNormalization(spec, '${recipe.normalize}')`);
  }
  const by: 'test' | 'val' = data.val ? 'val' : 'test';
  const mon = monitor(recipe, data.val !== undefined);
  const es = recipe.earlyStopping;
  const plateauMetric = recipe.scheduler.type === 'plateau' ? (recipe.scheduler.metric ?? (data.val ? 'valLoss' : 'trainLoss')) : undefined;
  if (plateauMetric?.startsWith('val') && !data.val) throw new RangeError(`the plateau schedule watches ${plateauMetric}, but there is no validation set`);
  const owned =
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
  const recorder = options.recorder ?? owned;
  // Restoring the best weights needs them somewhere: the best-weights file, or a scratch copy.
  // A recorded run keeps its best weights and checkpoint in the store, so it needs both on disk.
  const restore = es !== null && es.restoreBest !== false;
  const needScratch = (restore && options.bestPath === undefined) || (recorder !== undefined && (options.bestPath === undefined || options.checkpointPath === undefined));
  const scratch = needScratch ? mkdtempSync(join(tmpdir(), 'torchlet-run-')) : undefined;
  const bestPath = options.bestPath ?? (scratch !== undefined ? join(scratch, 'best.pt') : undefined);
  const checkpointPath = options.checkpointPath ?? (recorder !== undefined && scratch !== undefined ? join(scratch, 'checkpoint.ckpt') : undefined);
  let trainer: NativeTrainer;
  try {
    trainer = createTrainer(model, recipe, aug, data.train.size);
  } catch (err) {
    await owned?.fail(err).catch(() => undefined);
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
    throw err;
  }
  const ema = recipe.ema !== null;
  let history: EpochRecord[] = [];
  let best: TrainResult['best'] | null = null;
  // Keras's rule: stop after `patience` epochs in a row without improvement. It depends on
  // the history alone, so a resumed run stops where an uninterrupted one would.
  const stopped = (): boolean => es !== null && best !== null && history.length - best.epoch > 0 && history.length - best.epoch >= es.patience;
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
      // Checkpoints from before early stopping chose the best epoch by accuracy.
      const saved: (Omit<TrainResult['best'], 'metric' | 'value'> & Partial<TrainResult['best']>) | null = meta.best;
      best = saved && { ...saved, metric: saved.metric ?? (by === 'val' ? 'valAccuracy' : 'testAccuracy'), value: saved.value ?? saved.accuracy };
      if (restore && options.bestPath === undefined && best !== null) throw new Error(`cannot resume from '${options.resume}': restoring the best weights after a resume needs bestPath`);
      options.onResume?.(history);
      if (owned !== undefined) for (const r of history) await owned.epoch(r);
    }
    const evalOpts = { batchSize: options.evalBatchSize ?? 1000 };
    for (let epoch = history.length; epoch < recipe.epochs && !stopped(); epoch++) {
      const stats: EpochStats = await trainer.trainEpoch(data.train.handle, epoch, (p) => (options.signal?.aborted ? false : options.onProgress?.(epoch, p)));
      const start = performance.now();
      // With EMA the averaged weights are the ones evaluated, kept as best and released.
      if (ema) trainer.swapEma();
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
      const value = metricOf(record, mon.metric);
      const improved = best === null || (mon.mode === 'min' ? value < best.value - mon.minDelta : value > best.value + mon.minDelta);
      if (improved) {
        best = { epoch: epoch + 1, accuracy: valEval ? valEval.accuracy : testEval.accuracy, by, metric: mon.metric, value };
        if (bestPath !== undefined) model.save(bestPath);
      }
      if (ema) trainer.swapEma();
      if (plateauMetric !== undefined) trainer.observe(metricOf(record, plateauMetric));
      if (checkpointPath !== undefined) {
        const meta: CheckpointMeta = { version: 1, epochsDone: epoch + 1, history, best, recipe: { ...recipe, aug } };
        trainer.saveState(checkpointPath, JSON.stringify(meta));
      }
      await recorder?.epoch(record, { ...(checkpointPath !== undefined && { checkpoint: checkpointPath }), ...(improved && bestPath !== undefined && { best: bestPath }) });
      await options.onEpoch?.(record);
    }
    if (ema) trainer.swapEma();
    const last = history.at(-1);
    if (restore && best !== null && bestPath !== undefined && last !== undefined && best.epoch !== last.epoch) model.load(bestPath);
    const final = history.at(-1);
    if (final === undefined || best === null) throw new Error('training ran no epochs');
    const result: TrainResult = {
      history,
      best,
      final,
      ...(stopped() && history.length < recipe.epochs && { stoppedEarly: final.epoch }),
      ...(recorder && { runId: recorder.runId }),
    };
    await owned?.finish(result);
    return result;
  } catch (err) {
    const error = options.signal?.aborted ? new TrainingAborted('training was interrupted', { cause: err }) : err;
    await owned?.fail(error).catch(() => undefined);
    throw error;
  } finally {
    trainer.dispose();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  }
}
