// Training recipes: the reference (AdamW + OneCycleLR, the defaults of `npm run train`) and
// every other optimizer, schedule, early-stopping rule and preset the MNIST projects use.
import type { AugmentOptions, OptimizerOptions, SchedulerOptions } from './native.js';
import type { InputSpec, ModelSpec } from './spec.js';

export type OptimizerName = OptimizerOptions['type'];
export type SchedulerName = SchedulerOptions['type'];

/** The optimizer, less lr and weightDecay (the recipe's own fields), with PyTorch's option names. */
export interface OptimizerChoice {
  type: OptimizerName;
  /** Adam, AdamW. */
  betas?: [number, number];
  amsgrad?: boolean;
  /** Adam, AdamW, RMSprop. */
  eps?: number;
  /** SGD, RMSprop. */
  momentum?: number;
  /** SGD. */
  dampening?: number;
  nesterov?: boolean;
  /** RMSprop. */
  alpha?: number;
  centered?: boolean;
}

const OPTIMIZER_KEYS: Record<OptimizerName, readonly (keyof OptimizerChoice)[]> = {
  adam: ['betas', 'eps', 'amsgrad'],
  adamw: ['betas', 'eps', 'amsgrad'],
  sgd: ['momentum', 'dampening', 'nesterov'],
  rmsprop: ['alpha', 'eps', 'momentum', 'centered'],
};

/** A per-epoch figure of an EpochRecord that early stopping or a plateau schedule can watch. */
export type Metric = 'valLoss' | 'valAccuracy' | 'testLoss' | 'testAccuracy' | 'trainLoss' | 'trainAccuracy';
export const METRICS: readonly Metric[] = ['valLoss', 'valAccuracy', 'testLoss', 'testAccuracy', 'trainLoss', 'trainAccuracy'];

/**
 * The schedule. OneCycleLR takes its figures from the recipe (maxLr, divFactor, ...) and its
 * length from epochs x batches; a plateau schedule watches `metric` (default valLoss when
 * there is a validation set, else trainLoss) in `mode` (default: min for a loss, max for an
 * accuracy).
 */
export type SchedulerChoice =
  | { type: 'onecycle'; interval?: 'step' | 'epoch' }
  | (Exclude<SchedulerOptions, { type: 'onecycle' } | { type: 'plateau' }> & { interval?: 'step' | 'epoch' })
  | (Extract<SchedulerOptions, { type: 'plateau' }> & { metric?: Metric });

/** Keras's EarlyStopping: stop once `metric` has not improved by more than minDelta for `patience` epochs. */
export interface EarlyStopping {
  /** Default valLoss (it needs a validation set). */
  metric?: Metric;
  /** Default: min for a loss, max for an accuracy. */
  mode?: 'min' | 'max';
  patience: number;
  minDelta?: number;
  /** Load the best epoch's weights into the model at the end (default true). */
  restoreBest?: boolean;
}

export interface Recipe {
  epochs: number;
  batchSize: number;
  /** The optimizer's lr; OneCycleLR overrides it with maxLr / divFactor at the first step, as in PyTorch. */
  lr: number;
  maxLr: number;
  weightDecay: number;
  seed: number;
  divFactor: number;
  finalDivFactor: number;
  pctStart: number;
  anneal: 'cos' | 'linear';
  baseMomentum: number;
  maxMomentum: number;
  beta2: number;
  optimizer: OptimizerChoice;
  scheduler: SchedulerChoice;
  earlyStopping: EarlyStopping | null;
  /** The input normalisation the model was built with (withNormalization), checked by train(); null: the spec's own. */
  normalize: NormalizationName | null;
  /** The augmentation applied with --aug. */
  augment: AugmentOptions;
  /** Cross-entropy against (1 - s) one-hot + s uniform targets; 0: plain NLL. */
  labelSmoothing: number;
  /** Evaluate, keep as best and release an exponential moving average of the weights; null: the weights themselves. */
  ema: { decay: number } | null;
  /**
   * After every epoch, batch norm's running statistics become their plain average over the
   * clean (unaugmented) training images (PyTorch's swa_utils.update_bn), so evaluation
   * normalises with what clean digits produce rather than a momentum average over augmented
   * batches. Does not combine with `ema`.
   */
  recalibrateBatchNorm: boolean;
}

export const REFERENCE_AUGMENT: AugmentOptions = {
  degrees: 5,
  translate: [0.05, 0.05],
  shear: [-5, 5],
  distortion: 0.2,
  perspectiveP: 0.1,
};

/**
 * Named augmentations: the reference's RandomAffine + RandomPerspective, and the
 * early-stopping project's RandomRotation(10) + RandomAffine(translate 0.1), composed into
 * one warp per image like every augmentation here.
 */
export const AUGMENT_PRESETS = {
  reference: REFERENCE_AUGMENT,
  'rotate-translate': { degrees: 10, translate: [0.1, 0.1] },
} as const satisfies Record<string, AugmentOptions>;
export type AugmentPreset = keyof typeof AUGMENT_PRESETS;

/** Input normalisations: MNIST's mean/std, [-1, 1] (Normalize(0.5, 0.5)) and [0, 1] (ToTensor alone). */
export const NORMALIZATIONS = {
  mnist: { mean: [0.1307], std: [0.3081] },
  'minus1-1': { mean: [0.5], std: [0.5] },
  '0-1': { mean: [0], std: [1] },
} as const satisfies Record<string, Required<Pick<InputSpec, 'mean' | 'std'>>>;
export type NormalizationName = keyof typeof NORMALIZATIONS;

export function isNormalizationName(name: string): name is NormalizationName {
  return Object.hasOwn(NORMALIZATIONS, name);
}

/** `spec` with its input normalised as `name` says (single-channel presets, repeated per channel). */
export function withNormalization(spec: ModelSpec, name: NormalizationName): ModelSpec {
  const preset = NORMALIZATIONS[name];
  const repeat = (v: readonly number[]): number[] => Array.from({ length: spec.input.channels }, () => v[0] ?? 0);
  return { ...spec, input: { ...spec.input, mean: repeat(preset.mean), std: repeat(preset.std) } };
}

/** Whether `spec` normalises its input as preset `name` does. */
export function hasNormalization(spec: ModelSpec, name: NormalizationName): boolean {
  const want = withNormalization(spec, name).input;
  return JSON.stringify(spec.input.mean) === JSON.stringify(want.mean) && JSON.stringify(spec.input.std) === JSON.stringify(want.std);
}

export const REFERENCE_RECIPE: Recipe = {
  epochs: 15,
  batchSize: 128,
  lr: 0.01,
  maxLr: 0.01,
  weightDecay: 1e-4,
  seed: 42,
  divFactor: 10,
  finalDivFactor: 1000,
  pctStart: 0.3,
  anneal: 'cos',
  baseMomentum: 0.85,
  maxMomentum: 0.95,
  beta2: 0.999,
  optimizer: { type: 'adamw' },
  scheduler: { type: 'onecycle' },
  earlyStopping: null,
  normalize: null,
  augment: REFERENCE_AUGMENT,
  labelSmoothing: 0,
  ema: null,
  recalibrateBatchNorm: false,
};

/** Minimised or maximised: losses go down, accuracies up. */
export function metricMode(metric: Metric): 'min' | 'max' {
  return metric.endsWith('Loss') ? 'min' : 'max';
}

/** The optimizer the native trainer builds for `recipe`; an option its type does not have is an error. */
export function optimizerOptions(recipe: Recipe): OptimizerOptions {
  const { type, ...rest } = recipe.optimizer;
  const known = OPTIMIZER_KEYS[type];
  if (known === undefined) throw new RangeError(`optimizer.type must be one of ${Object.keys(OPTIMIZER_KEYS).join(', ')}, got '${String(type)}'`);
  for (const key of Object.keys(rest) as (keyof typeof rest)[]) {
    if (!known.includes(key) && rest[key] !== undefined) throw new RangeError(`optimizer.${key} does not apply to ${type} (it takes ${known.join(', ')})`);
  }
  const base = { lr: recipe.lr, weightDecay: recipe.weightDecay };
  switch (type) {
    case 'adam':
    case 'adamw': {
      // OneCycleLR cycles beta1 from maxMomentum; otherwise PyTorch's default 0.9 unless given.
      const beta1 = recipe.scheduler.type === 'onecycle' ? recipe.maxMomentum : 0.9;
      return { type, ...base, betas: rest.betas ?? [beta1, recipe.beta2], ...pick(rest, ['eps', 'amsgrad']) };
    }
    case 'sgd':
      return { type, ...base, ...pick(rest, ['momentum', 'dampening', 'nesterov']) };
    case 'rmsprop':
      return { type, ...base, ...pick(rest, ['alpha', 'eps', 'momentum', 'centered']) };
  }
}

/** The schedule the native trainer runs for `recipe`, given the batches per epoch. */
export function schedulerOptions(recipe: Recipe, stepsPerEpoch: number): SchedulerOptions {
  const s = recipe.scheduler;
  if (s.type === 'onecycle') {
    const perStep = (s.interval ?? 'step') === 'step';
    return {
      type: 'onecycle',
      interval: perStep ? 'step' : 'epoch',
      maxLr: recipe.maxLr,
      totalSteps: recipe.epochs * (perStep ? stepsPerEpoch : 1),
      pctStart: recipe.pctStart,
      anneal: recipe.anneal,
      divFactor: recipe.divFactor,
      finalDivFactor: recipe.finalDivFactor,
      baseMomentum: recipe.baseMomentum,
      maxMomentum: recipe.maxMomentum,
    };
  }
  if (s.type === 'plateau') {
    const { metric, ...rest } = s;
    return { ...rest, ...(rest.mode === undefined && metric !== undefined && { mode: metricMode(metric) }) };
  }
  return s;
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
