// The training config of `torchlet train --config`, `POST /runs` and the workers: one zod
// schema, and one place that turns a config into a recipe, a model and its data, so that
// the CLI and the workers train a config the same way.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { loadKaggleCsv, loadMnist, type Dataset } from './dataset.js';
import { Model } from './model.js';
import { models } from './models.js';
import type { AugmentOptions } from './native.js';
import type { ModelSpec } from './spec.js';
import {
  AUGMENT_PRESETS,
  METRICS,
  NORMALIZATIONS,
  withNormalization,
  type AugmentPreset,
  type EarlyStopping,
  type NormalizationName,
  type OptimizerChoice,
  type Recipe,
  type SchedulerChoice,
} from './recipe.js';
import { setThreads } from './runtime.js';
import { stratifiedSplit } from './split.js';
import { resolveRecipe, type TrainData } from './train.js';

export const OPTIMIZERS = ['adam', 'adamw', 'sgd', 'rmsprop'] as const;
export const SCHEDULERS = ['onecycle', 'constant', 'step', 'multistep', 'exponential', 'cosine', 'plateau'] as const;
export const NORMALIZATION_NAMES = Object.keys(NORMALIZATIONS) as [NormalizationName, ...NormalizationName[]];
export const AUGMENT_NAMES = Object.keys(AUGMENT_PRESETS) as [AugmentPreset, ...AugmentPreset[]];
const num = z.number();
const int = z.number().int();
const range = z.union([num, z.tuple([num, num])]);

const OptimizerSchema = z.union([
  z.enum(OPTIMIZERS),
  z
    .object({
      type: z.enum(OPTIMIZERS),
      betas: z.tuple([num, num]),
      eps: num.nonnegative(),
      amsgrad: z.boolean(),
      momentum: num.nonnegative(),
      dampening: num,
      nesterov: z.boolean(),
      alpha: num.nonnegative(),
      centered: z.boolean(),
    })
    .partial()
    .required({ type: true })
    .strict(),
]);

// Each schedule's own options are checked natively, with PyTorch's rules and messages.
const SchedulerSchema = z.union([
  z.enum(SCHEDULERS),
  z
    .object({
      type: z.enum(SCHEDULERS),
      interval: z.enum(['step', 'epoch']),
      factor: num,
      totalIters: int,
      stepSize: int,
      gamma: num,
      milestones: z.array(int),
      tMax: int,
      etaMin: num,
      mode: z.enum(['min', 'max']),
      metric: z.enum(METRICS),
      patience: int,
      threshold: num,
      thresholdMode: z.enum(['rel', 'abs']),
      cooldown: int,
      minLr: num,
      eps: num,
    })
    .partial()
    .required({ type: true })
    .strict(),
]);

const EarlyStoppingSchema = z
  .object({ metric: z.enum(METRICS), mode: z.enum(['min', 'max']), patience: int.nonnegative(), minDelta: num.nonnegative(), restoreBest: z.boolean() })
  .partial()
  .required({ patience: true })
  .strict();

const AugmentSchema = z.union([
  z.enum(AUGMENT_NAMES),
  z
    .object({
      degrees: num,
      translate: range,
      scale: z.tuple([num, num]),
      shear: range,
      shearY: range,
      distortion: num,
      perspectiveP: num,
      elastic: z.object({ alpha: num.nonnegative(), sigma: num.nonnegative() }).partial().strict(),
      interpolation: z.enum(['bilinear', 'nearest']),
    })
    .partial()
    .strict(),
]);

export const DATASET_PATTERN = /^(mnist|fashion-mnist|kaggle:.+)$/;

export const ConfigSchema = z
  .object({
    /** Free text, for the projects' config files. */
    description: z.string(),
    model: z.string(),
    aug: z.boolean(),
    augment: AugmentSchema,
    epochs: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    lr: z.number().positive(),
    maxLr: z.number().positive(),
    weightDecay: z.number().nonnegative(),
    optimizer: OptimizerSchema,
    scheduler: SchedulerSchema,
    earlyStopping: EarlyStoppingSchema,
    labelSmoothing: z.number().min(0).lt(1),
    ema: z.object({ decay: z.number().gt(0).lt(1) }).strict(),
    recalibrateBatchNorm: z.boolean(),
    normalize: z.enum(NORMALIZATION_NAMES),
    seed: z.number().int().nonnegative(),
    device: z.string(),
    threads: z.number().int().positive(),
    dataDir: z.string(),
    dataset: z.string().regex(DATASET_PATTERN, "must be 'mnist', 'fashion-mnist' or 'kaggle:DIR'"),
    out: z.string(),
    /** A stratified, seeded validation set: N images, or a fraction. */
    valSplit: z.number().nonnegative(),
    trainLimit: z.number().int().positive(),
    /** Evaluate on the first N MNIST test images only: for smoke runs, whose figures are then not the test set's. */
    testLimit: z.number().int().positive(),
  })
  .partial()
  .strict();

export type TrainConfig = z.infer<typeof ConfigSchema>;

/** A config that does not fit the schema; `issues` name each bad field. */
export class ConfigError extends Error {
  readonly issues: { field: string; message: string }[];

  constructor(source: string, issues: { field: string; message: string }[], text?: string) {
    super(text ?? `${source} is invalid: ${issues.map((i) => `${i.field}: ${i.message}`).join('; ')}`);
    this.issues = issues;
  }
}

/** Validates a parsed config (an object from JSON or YAML). */
export function parseConfig(raw: unknown, source: string): TrainConfig {
  const parsed = ConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    source,
    parsed.error.issues.map((i) => {
      // An unrecognized key is reported by zod at the object's path; name the key itself.
      const keys = i.code === 'unrecognized_keys' ? i.keys.map((k) => [...i.path, k].join('.')).join(', ') : undefined;
      return { field: keys ?? (i.path.join('.') || '(top level)'), message: i.message };
    }),
  );
}

/** Parses config text: JSON, or YAML (of which JSON is a subset). */
export function parseConfigText(text: string, format: 'json' | 'yaml', source: string): TrainConfig {
  let raw: unknown;
  try {
    raw = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const what = `not valid ${format === 'json' ? 'JSON' : 'YAML'}`;
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(source, [{ field: '(text)', message: `${what}: ${reason}` }], `${source} is ${what}: ${reason}`);
  }
  return parseConfig(raw, source);
}

export function readConfig(path: string): TrainConfig {
  const ext = extname(path).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(ext)) throw new ConfigError(`config '${path}'`, [{ field: '(file)', message: 'must be .json, .yaml or .yml' }], `config '${path}' must be .json, .yaml or .yml`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(`config '${path}'`, [{ field: '(file)', message: reason }], `cannot read config '${path}': ${reason}`);
  }
  return parseConfigText(text, ext === '.json' ? 'json' : 'yaml', `config '${path}'`);
}

/** `dataset`: 'mnist', 'fashion-mnist', or 'kaggle:DIR' (Kaggle's train.csv and test.csv in DIR). */
export type DatasetChoice = { kind: 'mnist' | 'fashion-mnist' } | { kind: 'kaggle'; dir: string };

export function parseDataset(value: string): DatasetChoice {
  if (value === 'mnist' || value === 'fashion-mnist') return { kind: value };
  const m = /^kaggle:(.+)$/.exec(value);
  if (m?.[1] !== undefined) return { kind: 'kaggle', dir: m[1] };
  throw new RangeError(`dataset must be 'mnist', 'fashion-mnist' or 'kaggle:DIR', got '${value}'`);
}

/**
 * Architectures by name. Core knows the reference models; the CLI and the workers pass the
 * model zoo's registry (src/zoo), which core does not import.
 */
export type ModelRegistry = Readonly<Record<string, ModelSpec>>;

/** A config with the model, augmentation, recipe figures, device and dataset filled in. */
export type ResolvedConfig = TrainConfig &
  Pick<Recipe, 'epochs' | 'batchSize' | 'lr' | 'maxLr' | 'weightDecay' | 'seed'> & {
    model: string;
    aug: boolean;
    device: string;
    dataset: string;
  };

/** An optimizer or schedule given by name alone is that type with its defaults. */
export const choiceObject = <T extends { type: string }>(v: T | T['type'] | undefined): T | undefined => (typeof v === 'string' ? ({ type: v } as T) : v);

function augmentFrom(value: TrainConfig['augment']): AugmentOptions | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'string' ? AUGMENT_PRESETS[value] : (value as AugmentOptions);
}

/** The recipe a config names; `--augment` (a preset or options) implies `aug` unless `aug: false`. */
export function resolveConfig(cfg: TrainConfig, source = 'config', registry: ModelRegistry = models): { config: ResolvedConfig; recipe: Recipe } {
  const modelName = cfg.model ?? 'super_light';
  if (!Object.hasOwn(registry, modelName)) throw new ConfigError(source, [{ field: 'model', message: `unknown model '${modelName}' (choose one of ${Object.keys(registry).join(', ')})` }]);
  const dataset = cfg.dataset ?? 'mnist';
  try {
    parseDataset(dataset);
  } catch (err) {
    throw new ConfigError(source, [{ field: 'dataset', message: err instanceof Error ? err.message : String(err) }]);
  }
  const augment = augmentFrom(cfg.augment);
  let recipe: Recipe;
  try {
    recipe = resolveRecipe({
      ...(cfg.epochs !== undefined && { epochs: cfg.epochs }),
      ...(cfg.batchSize !== undefined && { batchSize: cfg.batchSize }),
      ...(cfg.lr !== undefined && { lr: cfg.lr }),
      ...(cfg.maxLr !== undefined && { maxLr: cfg.maxLr }),
      ...(cfg.weightDecay !== undefined && { weightDecay: cfg.weightDecay }),
      ...(cfg.seed !== undefined && { seed: cfg.seed }),
      ...(cfg.optimizer !== undefined && { optimizer: choiceObject<OptimizerChoice>(cfg.optimizer) }),
      ...(cfg.scheduler !== undefined && { scheduler: choiceObject<SchedulerChoice>(cfg.scheduler as SchedulerChoice | SchedulerChoice['type']) }),
      ...(cfg.earlyStopping !== undefined && { earlyStopping: cfg.earlyStopping as EarlyStopping }),
      ...(cfg.labelSmoothing !== undefined && { labelSmoothing: cfg.labelSmoothing }),
      ...(cfg.ema !== undefined && { ema: cfg.ema }),
      ...(cfg.recalibrateBatchNorm !== undefined && { recalibrateBatchNorm: cfg.recalibrateBatchNorm }),
      ...(cfg.normalize !== undefined && { normalize: cfg.normalize }),
      ...(augment && { augment }),
    });
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    // resolveRecipe's messages start with the field they are about ("epochs must be ...").
    throw new ConfigError(source, [{ field: /^[\w.]+/.exec(text)?.[0] ?? '(recipe)', message: text }]);
  }
  const config: ResolvedConfig = {
    ...cfg,
    model: modelName,
    aug: cfg.aug ?? augment !== undefined,
    epochs: recipe.epochs,
    batchSize: recipe.batchSize,
    lr: recipe.lr,
    maxLr: recipe.maxLr,
    weightDecay: recipe.weightDecay,
    seed: recipe.seed,
    device: cfg.device ?? 'auto',
    dataset,
  };
  return { config, recipe };
}

export interface PreparedTraining {
  config: ResolvedConfig;
  recipe: Recipe;
  model: Model;
  /** For Kaggle, `test` is a held-out stratified split of train.csv (test.csv has no labels). */
  data: TrainData;
  dispose(): void;
}

/**
 * Sets the thread count, loads the data (with the validation split) and builds the model
 * (with the recipe's normalisation) that a resolved config names.
 */
export async function prepareTraining(config: ResolvedConfig, recipe: Recipe, source = 'config', registry: ModelRegistry = models): Promise<PreparedTraining> {
  const architecture = Object.hasOwn(registry, config.model) ? registry[config.model] : undefined;
  if (architecture === undefined) throw new ConfigError(source, [{ field: 'model', message: `unknown model '${config.model}' (choose one of ${Object.keys(registry).join(', ')})` }]);
  if (config.threads !== undefined) setThreads(config.threads);
  const dataset = parseDataset(config.dataset);
  const limit = config.trainLimit !== undefined ? { trainLimit: config.trainLimit } : {};
  if (config.testLimit !== undefined && dataset.kind === 'kaggle') {
    throw new ConfigError(source, [{ field: 'testLimit', message: "applies to MNIST's test set; with kaggle:DIR the test figures come from the valSplit of train.csv" }]);
  }
  const owned: Dataset[] = [];
  const release = (): void => owned.forEach((d) => d.dispose());
  // The split copies its images, so the whole set is freed at once.
  const splitOff = (set: Dataset, size: number): { train: Dataset; val: Dataset } => {
    try {
      const parts = stratifiedSplit(set, { size, seed: recipe.seed });
      owned.push(parts.train, parts.val);
      return parts;
    } catch (err) {
      throw new ConfigError(source, [{ field: 'valSplit', message: err instanceof Error ? err.message : String(err) }]);
    } finally {
      set.dispose();
    }
  };
  try {
    let data: TrainData;
    if (dataset.kind === 'kaggle') {
      // Kaggle keeps test.csv's labels, so a stratified split of train.csv stands in as the test set.
      const kaggle = await loadKaggleCsv(dataset.dir, limit);
      kaggle.test?.dispose();
      const parts = splitOff(kaggle.train, config.valSplit ?? 0.1);
      data = { train: parts.train, test: parts.val };
    } else {
      const loaded = await loadMnist({
        dataset: dataset.kind,
        ...(config.dataDir !== undefined && { dataDir: config.dataDir }),
        ...limit,
        ...(config.testLimit !== undefined && { testLimit: config.testLimit }),
      });
      owned.push(loaded.test);
      data = { train: loaded.train, test: loaded.test };
      if (config.valSplit !== undefined && config.valSplit > 0) {
        const parts = splitOff(loaded.train, config.valSplit);
        data = { train: parts.train, test: loaded.test, val: parts.val };
      } else {
        owned.push(loaded.train);
      }
    }
    const spec = recipe.normalize !== null ? withNormalization(architecture, recipe.normalize) : architecture;
    let model: Model;
    try {
      model = new Model(spec, { device: config.device, seed: recipe.seed });
    } catch (err) {
      throw new ConfigError(source, [{ field: 'device', message: err instanceof Error ? err.message : String(err) }]);
    }
    return {
      config,
      recipe,
      model,
      data,
      dispose: () => {
        model.dispose();
        release();
      },
    };
  } catch (err) {
    release();
    throw err;
  }
}
