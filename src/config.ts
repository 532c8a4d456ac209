// The training config of `torchlet train --config` and `POST /runs`: one zod schema, and
// one place that turns a config into a model and its data, so the CLI and the workers
// train a config the same way.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { loadMnist } from './dataset.js';
import type { Dataset } from './dataset.js';
import { Model } from './model.js';
import { isModelName, models, type ModelName } from './models.js';
import type { Recipe } from './recipe.js';
import { resolveRecipe, type TrainData } from './train.js';

export const ConfigSchema = z
  .object({
    model: z.string(),
    aug: z.boolean(),
    epochs: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    lr: z.number().positive(),
    maxLr: z.number().positive(),
    weightDecay: z.number().nonnegative(),
    seed: z.number().int().nonnegative(),
    device: z.string(),
    threads: z.number().int().positive(),
    dataDir: z.string(),
    dataset: z.enum(['mnist', 'fashion-mnist']),
    out: z.string(),
    valSplit: z.number().int().nonnegative(),
    trainLimit: z.number().int().positive(),
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
      const keys = i.code === 'unrecognized_keys' ? i.keys.join(', ') : undefined;
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
  if (!['.json', '.yaml', '.yml'].includes(ext)) throw new ConfigError(`config '${path}'`, [{ field: '(file)', message: 'must be .json, .yaml or .yml' }]);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(`config '${path}'`, [{ field: '(file)', message: reason }], `cannot read config '${path}': ${reason}`);
  }
  return parseConfigText(text, ext === '.json' ? 'json' : 'yaml', `config '${path}'`);
}

/** A config with every default filled in (except the data and output paths, which stay optional). */
export interface ResolvedConfig extends TrainConfig {
  model: ModelName;
  aug: boolean;
  epochs: number;
  batchSize: number;
  lr: number;
  maxLr: number;
  weightDecay: number;
  seed: number;
  device: string;
  dataset: 'mnist' | 'fashion-mnist';
  valSplit: number;
}

export function resolveConfig(cfg: TrainConfig, source = 'config'): { config: ResolvedConfig; recipe: Recipe } {
  const modelName = cfg.model ?? 'super_light';
  if (!isModelName(modelName)) throw new ConfigError(source, [{ field: 'model', message: `unknown model '${modelName}' (choose one of ${Object.keys(models).join(', ')})` }]);
  let recipe: Recipe;
  try {
    recipe = resolveRecipe(cfg);
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    throw new ConfigError(source, [{ field: text.split(' ')[0] ?? '(recipe)', message: text }]);
  }
  const config: ResolvedConfig = {
    ...cfg,
    model: modelName,
    aug: cfg.aug ?? false,
    epochs: recipe.epochs,
    batchSize: recipe.batchSize,
    lr: recipe.lr,
    maxLr: recipe.maxLr,
    weightDecay: recipe.weightDecay,
    seed: recipe.seed,
    device: cfg.device ?? 'auto',
    dataset: cfg.dataset ?? 'mnist',
    valSplit: cfg.valSplit ?? 0,
  };
  return { config, recipe };
}

export interface PreparedTraining {
  config: ResolvedConfig;
  recipe: Recipe;
  model: Model;
  data: TrainData;
  dispose(): void;
}

/** Loads the data and builds the model a resolved config names. */
export async function prepareTraining(config: ResolvedConfig, recipe: Recipe, source = 'config'): Promise<PreparedTraining> {
  const loaded = await loadMnist({
    dataset: config.dataset,
    ...(config.dataDir !== undefined && { dataDir: config.dataDir }),
    ...(config.trainLimit !== undefined && { trainLimit: config.trainLimit }),
  });
  const owned: Dataset[] = [loaded.train, loaded.test];
  const dispose = (): void => owned.forEach((d) => d.dispose());
  try {
    let train = loaded.train;
    let val: Dataset | undefined;
    if (config.valSplit > 0) {
      if (config.valSplit >= loaded.train.size) throw new ConfigError(source, [{ field: 'valSplit', message: `${config.valSplit} leaves no training images (the set has ${loaded.train.size})` }]);
      train = loaded.train.slice(0, loaded.train.size - config.valSplit);
      val = loaded.train.slice(loaded.train.size - config.valSplit, loaded.train.size);
      owned.push(train, val);
    }
    let model: Model;
    try {
      model = new Model(models[config.model], { device: config.device, seed: recipe.seed });
    } catch (err) {
      throw new ConfigError(source, [{ field: 'device', message: err instanceof Error ? err.message : String(err) }]);
    }
    return {
      config,
      recipe,
      model,
      data: { train, test: loaded.test, ...(val && { val }) },
      dispose: () => {
        model.dispose();
        dispose();
      },
    };
  } catch (err) {
    dispose();
    throw err;
  }
}
