// The training loop: one native call per epoch, then eval-mode accuracy on train and
// test (and validation), best-weights and resumable checkpoints, all saved atomically.
import { existsSync } from 'node:fs';
import { native, type EpochStats, type NativeTrainer, type ProgressInfo } from './native.js';
import type { Dataset } from './dataset.js';
import type { Model } from './model.js';
import { REFERENCE_RECIPE, type Recipe } from './recipe.js';

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
}

export interface TrainResult {
  history: EpochRecord[];
  best: { epoch: number; accuracy: number; by: 'test' | 'val' };
  final: EpochRecord;
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
      if (best === null || score > best.accuracy) {
        best = { epoch: epoch + 1, accuracy: score, by };
        if (options.bestPath !== undefined) model.save(options.bestPath);
      }
      if (options.checkpointPath !== undefined) {
        const meta: CheckpointMeta = { version: 1, epochsDone: epoch + 1, history, best, recipe: { ...recipe, aug } };
        trainer.saveState(options.checkpointPath, JSON.stringify(meta));
      }
      await options.onEpoch?.(record);
    }
  } finally {
    trainer.dispose();
  }
  const final = history.at(-1);
  if (final === undefined || best === null) throw new Error('training ran no epochs');
  return { history, best, final };
}
