// `torchlet train`: the reference recipe from the command line.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Model } from '../model.js';
import { Dataset, loadKaggleCsv, loadMnist } from '../dataset.js';
import { isModelName, models, type ModelName } from '../zoo/index.js';
import {
  AUGMENT_PRESETS,
  METRICS,
  NORMALIZATIONS,
  REFERENCE_RECIPE,
  withNormalization,
  type AugmentPreset,
  type EarlyStopping,
  type NormalizationName,
  type OptimizerChoice,
  type SchedulerChoice,
} from '../recipe.js';
import type { AugmentOptions } from '../native.js';
import { stratifiedSplit } from '../split.js';
import { getThreads, setThreads } from '../runtime.js';
import { resolveRecipe, train, type EpochRecord } from '../train.js';
import { RunLog, formatEpoch, logDir } from '../training-log.js';
import { InputError, asInput, message, parseDataset, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from './common.js';

const OPTIMIZERS = ['adam', 'adamw', 'sgd', 'rmsprop'] as const;
const SCHEDULERS = ['onecycle', 'constant', 'step', 'multistep', 'exponential', 'cosine', 'plateau'] as const;
const NORMALIZATION_NAMES = Object.keys(NORMALIZATIONS) as [NormalizationName, ...NormalizationName[]];
const AUGMENT_NAMES = Object.keys(AUGMENT_PRESETS) as [AugmentPreset, ...AugmentPreset[]];
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
      interpolation: z.enum(['bilinear', 'nearest']),
    })
    .partial()
    .strict(),
]);

const ConfigSchema = z
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
    normalize: z.enum(NORMALIZATION_NAMES),
    seed: z.number().int().nonnegative(),
    device: z.string(),
    threads: z.number().int().positive(),
    dataDir: z.string(),
    dataset: z.string().regex(/^(mnist|fashion-mnist|kaggle:.+)$/, "must be 'mnist', 'fashion-mnist' or 'kaggle:DIR'"),
    out: z.string(),
    valSplit: z.number().nonnegative(),
    trainLimit: z.number().int().positive(),
  })
  .partial()
  .strict();

export type TrainConfig = z.infer<typeof ConfigSchema>;

export function readConfig(path: string): TrainConfig {
  const text = asInput(`cannot read config '${path}'`, () => readFileSync(path, 'utf8'));
  const ext = extname(path).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(ext)) throw new InputError(`config '${path}' must be .json, .yaml or .yml`);
  const raw: unknown = asInput(`config '${path}' is not valid ${ext === '.json' ? 'JSON' : 'YAML'}`, () =>
    ext === '.json' ? JSON.parse(text) : parseYaml(text),
  );
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new InputError(`config '${path}' is invalid: ${issues}`);
  }
  return parsed.data;
}

function progressReporter(model: string, epochs: number) {
  if (!process.stderr.isTTY || process.env.CI) return { update: () => undefined, done: () => undefined };
  const bar = new SingleBar(
    {
      format: `${model} epoch {epoch}/${epochs} [{bar}] {value}/{total} | {rate} steps/s | loss {loss} acc {acc}% | ETA {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    Presets.shades_classic,
  );
  let started = -1;
  let t0 = 0;
  return {
    update(epoch: number, step: number, steps: number, loss: number, accuracy: number) {
      if (started !== epoch) {
        if (started >= 0) bar.stop();
        bar.start(steps, 0, { epoch: epoch + 1, rate: '-', loss: '-', acc: '-' });
        started = epoch;
        t0 = performance.now();
      }
      const rate = (step / ((performance.now() - t0) / 1000)).toFixed(1);
      bar.update(step, { epoch: epoch + 1, rate, loss: loss.toFixed(4), acc: (100 * accuracy).toFixed(2) });
    },
    done() {
      if (started >= 0) bar.stop();
      started = -1;
    },
  };
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a model: the reference recipe (AdamW + OneCycleLR) by default, or any optimizer, schedule and early stopping')
    .addOption(new Option('--model <name>', 'model to train (default super_light)').choices(Object.keys(models)))
    .option('--aug', 'augment (default: the reference RandomAffine + RandomPerspective)')
    .option('--no-aug', 'do not augment (overrides a config file)')
    .addOption(new Option('--augment <preset>', 'augment with a named preset (implies --aug)').choices(AUGMENT_NAMES))
    .option('--epochs <n>', `epochs (default ${REFERENCE_RECIPE.epochs})`, positiveInt('--epochs'))
    .option('--batch-size <n>', `batch size (default ${REFERENCE_RECIPE.batchSize})`, positiveInt('--batch-size'))
    .addOption(new Option('--optimizer <name>', 'optimizer (default adamw)').choices(OPTIMIZERS))
    .option('--lr <x>', `the optimizer's learning rate (default ${REFERENCE_RECIPE.lr}; OneCycleLR starts from max-lr / 10)`, positiveNumber('--lr'))
    .option('--weight-decay <x>', `weight decay (default ${REFERENCE_RECIPE.weightDecay})`, nonNegativeNumber('--weight-decay'))
    .option('--momentum <x>', 'SGD or RMSprop momentum (default 0)', nonNegativeNumber('--momentum'))
    .option('--nesterov', 'SGD with Nesterov momentum')
    .addOption(new Option('--scheduler <name>', 'learning-rate schedule (default onecycle)').choices(SCHEDULERS))
    .addOption(new Option('--lr-interval <when>', "step the schedule after every batch ('step') or epoch ('epoch'); default: step for onecycle, else epoch").choices(['step', 'epoch']))
    .option('--max-lr <x>', `OneCycleLR peak learning rate (default ${REFERENCE_RECIPE.maxLr})`, positiveNumber('--max-lr'))
    .option('--step-size <n>', 'step schedule: decay every N intervals', positiveInt('--step-size'))
    .option('--gamma <x>', 'step, multistep and exponential schedules: the decay factor', positiveNumber('--gamma'))
    .option('--milestones <list>', 'multistep schedule: comma-separated intervals, e.g. 10,20', intList('--milestones'))
    .option('--t-max <n>', 'cosine schedule: intervals to the minimum', positiveInt('--t-max'))
    .option('--eta-min <x>', 'cosine schedule: the minimum lr (default 0)', nonNegativeNumber('--eta-min'))
    .option('--lr-patience <n>', 'plateau schedule: bad epochs before the lr is cut (default 10)', nonNegativeInt('--lr-patience'))
    .option('--lr-factor <x>', 'plateau schedule: the factor the lr is cut by (default 0.1)', positiveNumber('--lr-factor'))
    .option('--patience <n>', 'early stopping: stop after N epochs without improvement', nonNegativeInt('--patience'))
    .addOption(new Option('--monitor <metric>', 'early stopping: the metric watched (default valLoss)').choices(METRICS))
    .option('--min-delta <x>', 'early stopping: the least change that counts as improvement (default 0)', nonNegativeNumber('--min-delta'))
    .option('--no-restore-best', 'early stopping: keep the last epoch\'s weights instead of the best')
    .addOption(new Option('--normalize <preset>', "input normalisation: 'mnist' mean/std (default), 'minus1-1' or '0-1'").choices(NORMALIZATION_NAMES))
    .option('--seed <n>', `random seed (default ${REFERENCE_RECIPE.seed})`, nonNegativeInt('--seed'))
    .option('--device <device>', "'cpu', 'cuda', 'cuda:N' or 'auto' (default 'auto')")
    .option('--threads <n>', 'libtorch intra-op threads (default: all cores)', positiveInt('--threads'))
    .option('--data-dir <dir>', 'folder holding the four IDX .gz files (default: data/mnist, TORCHLET_DATA, or the download cache)')
    .option('--dataset <name>', "'mnist' (default), 'fashion-mnist', or 'kaggle:DIR' for Kaggle's train.csv in DIR (its per-epoch test figures come from a held-out split, --val-split, default 0.1)", (v: string) => (parseDataset(v), v))
    .option('--out <file>', "best weights (a PyTorch state_dict); the resumable checkpoint goes beside it as .ckpt (default 'runs/<model>-<aug|noaug>.pt')")
    .option('--val-split <n>', 'hold out a stratified, seeded validation set: N images, or a fraction (0.1); the best epoch is chosen on it', positiveNumber('--val-split'))
    .option('--train-limit <n>', 'train on the first N images only (quick experiments)', positiveInt('--train-limit'))
    .option('--resume <file>', 'continue from a .ckpt written by an earlier run with the same options')
    .option('--config <file>', 'read options from a .yaml or .json file; flags given on the command line win')
    .action(async (_opts: unknown, cmd: Command) => {
      await runTrain(cmd);
    });
}

function intList(name: string) {
  return (value: string): number[] => {
    const parts = value.split(',').map((p) => p.trim());
    if (parts.some((p) => !/^\d+$/.test(p))) throw new InvalidArgumentError(`${name} must be comma-separated integers, got '${value}'`);
    return parts.map(Number);
  };
}

type Flags = Omit<TrainConfig, 'optimizer' | 'scheduler'> & {
  optimizer?: OptimizerChoice['type'];
  scheduler?: SchedulerChoice['type'];
  config?: string;
  resume?: string;
  momentum?: number;
  nesterov?: boolean;
  lrInterval?: 'step' | 'epoch';
  stepSize?: number;
  gamma?: number;
  milestones?: number[];
  tMax?: number;
  etaMin?: number;
  lrPatience?: number;
  lrFactor?: number;
  patience?: number;
  monitor?: EarlyStopping['metric'];
  minDelta?: number;
  restoreBest?: boolean;
};

function omit<T extends object, K extends keyof T>(o: T, keys: K[]): Omit<T, K> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k as K))) as Omit<T, K>;
}

const asObject = <T extends { type: string }>(v: T | T['type'] | undefined): T | undefined => (typeof v === 'string' ? ({ type: v } as T) : v);
const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Merges the recipe flags into the config file's optimizer, scheduler and early stopping. */
function recipeFromFlags(file: TrainConfig, cli: Partial<Flags>): { optimizer?: OptimizerChoice; scheduler?: SchedulerChoice; earlyStopping?: EarlyStopping } {
  const out: { optimizer?: OptimizerChoice; scheduler?: SchedulerChoice; earlyStopping?: EarlyStopping } = {};
  // A type changed on the command line starts from that type's defaults.
  const base = <T extends { type: string }>(fromFile: T | undefined, type: string | undefined): T | undefined =>
    fromFile && (type === undefined || type === fromFile.type) ? fromFile : undefined;
  const fileOptimizer = asObject(file.optimizer);
  const optFlags = defined({ momentum: cli.momentum, nesterov: cli.nesterov });
  const optimizer = { ...(base(fileOptimizer, cli.optimizer) ?? { type: cli.optimizer ?? fileOptimizer?.type ?? REFERENCE_RECIPE.optimizer.type }), ...optFlags };
  if (fileOptimizer !== undefined || cli.optimizer !== undefined || Object.keys(optFlags).length > 0) {
    out.optimizer = { ...optimizer, ...(cli.optimizer !== undefined && { type: cli.optimizer }) } as OptimizerChoice;
  }
  const fileScheduler = asObject(file.scheduler);
  const schedFlags = defined({
    interval: cli.lrInterval,
    stepSize: cli.stepSize,
    gamma: cli.gamma,
    milestones: cli.milestones,
    tMax: cli.tMax,
    etaMin: cli.etaMin,
    patience: cli.lrPatience,
    factor: cli.lrFactor,
  });
  if (fileScheduler !== undefined || cli.scheduler !== undefined || Object.keys(schedFlags).length > 0) {
    const type = cli.scheduler ?? fileScheduler?.type ?? REFERENCE_RECIPE.scheduler.type;
    out.scheduler = { ...(base(fileScheduler, cli.scheduler) ?? {}), type, ...schedFlags } as SchedulerChoice;
  }
  const esFlags = defined({ patience: cli.patience, metric: cli.monitor, minDelta: cli.minDelta, restoreBest: cli.restoreBest });
  if (file.earlyStopping !== undefined || Object.keys(esFlags).length > 0) {
    const es = { ...file.earlyStopping, ...esFlags };
    if (es.patience === undefined) throw new InputError('early stopping needs --patience N (or earlyStopping.patience in the config)');
    out.earlyStopping = es as EarlyStopping;
  }
  return out;
}

function augmentFrom(value: TrainConfig['augment']): AugmentOptions | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'string' ? AUGMENT_PRESETS[value] : (value as AugmentOptions);
}

async function runTrain(cmd: Command): Promise<void> {
  const flags = cmd.opts<Flags>();
  const fromFile = flags.config !== undefined ? readConfig(flags.config) : {};
  // Flags given on the command line beat the config file, which beats the recipe.
  const cli: Partial<Flags> = Object.fromEntries(Object.entries(flags).filter(([key]) => cmd.getOptionValueSource(key) === 'cli'));
  // The recipe's nested parts (optimizer, scheduler, early stopping, augmentation) are merged apart.
  const cfg = omit({ ...fromFile, ...cli }, ['optimizer', 'scheduler', 'earlyStopping', 'augment']);
  const modelName = cfg.model ?? 'super_light';
  if (!isModelName(modelName)) throw new InputError(`unknown model '${modelName}' (choose one of ${Object.keys(models).join(', ')})`);
  const augment = augmentFrom(cli.augment ?? fromFile.augment);
  const aug = cfg.aug ?? augment !== undefined;
  const recipe = asInput('bad training options', () =>
    resolveRecipe({
      ...cfg,
      ...recipeFromFlags(fromFile, cli),
      ...(augment && { augment }),
      ...(cfg.normalize !== undefined && { normalize: cfg.normalize }),
    }),
  );
  if (cfg.threads !== undefined) setThreads(cfg.threads);

  const dataset = asInput('bad dataset', () => parseDataset(cfg.dataset ?? 'mnist'));
  let trainSet: Dataset;
  let testSet: Dataset;
  let valSet: Dataset | undefined;
  if (dataset.kind === 'kaggle') {
    // Kaggle keeps test.csv's labels, so a stratified split of train.csv stands in as the test set.
    const kaggle = await loadKaggleCsv(dataset.dir, { ...(cfg.trainLimit !== undefined && { trainLimit: cfg.trainLimit }) });
    kaggle.test?.dispose();
    const split = asInput('bad --val-split', () => stratifiedSplit(kaggle.train, { size: cfg.valSplit ?? 0.1, seed: recipe.seed }));
    kaggle.train.dispose();
    trainSet = split.train;
    testSet = split.val;
  } else {
    const data = await loadMnist({
      dataset: dataset.kind,
      ...(cfg.dataDir !== undefined && { dataDir: cfg.dataDir }),
      ...(cfg.trainLimit !== undefined && { trainLimit: cfg.trainLimit }),
    });
    trainSet = data.train;
    testSet = data.test;
    if (cfg.valSplit !== undefined && cfg.valSplit > 0) {
      const split = asInput('bad --val-split', () => stratifiedSplit(data.train, { size: cfg.valSplit ?? 0, seed: recipe.seed }));
      data.train.dispose();
      trainSet = split.train;
      valSet = split.val;
    }
  }

  const spec = recipe.normalize !== null ? withNormalization(models[modelName as ModelName], recipe.normalize) : models[modelName as ModelName];
  const model = asInput('bad --device', () => new Model(spec, { device: cfg.device ?? 'auto', seed: recipe.seed }));
  const out = cfg.out ?? `runs/${modelName}-${aug ? 'aug' : 'noaug'}.pt`;
  const checkpointPath = out.replace(/\.pt$/, '') + '.ckpt';
  mkdirSync(dirname(out), { recursive: true });
  const log = new RunLog(logDir(), { model: modelName, aug, params: model.numParams(), device: model.device, threads: getThreads(), recipe });
  const bar = progressReporter(modelName, recipe.epochs);
  process.stderr.write(
    `training ${modelName} (${model.numParams()} parameters) on ${model.device} with ${getThreads()} threads, aug=${aug}, ${recipe.epochs} epochs, ` +
      `${recipe.optimizer.type} + ${recipe.scheduler.type}${recipe.earlyStopping ? `, early stopping (patience ${recipe.earlyStopping.patience})` : ''}\n` +
      `logs: ${log.logPath}\n`,
  );
  const onEpoch = (r: EpochRecord): void => {
    bar.done();
    log.epoch(r);
    process.stdout.write(`${formatEpoch(r)}\n`);
  };
  try {
    const result = await train(
      model,
      { train: trainSet, test: testSet, ...(valSet && { val: valSet }) },
      {
        ...recipe,
        aug,
        bestPath: out,
        checkpointPath,
        ...(flags.resume !== undefined && { resume: flags.resume }),
        onProgress: (epoch, p) => bar.update(epoch, p.step, p.steps, p.loss, p.accuracy),
        onEpoch,
        onResume: (history) => history.forEach((r) => log.epoch(r)),
      },
    );
    const stopped = result.stoppedEarly !== undefined ? `early stopping ended the run after epoch ${result.stoppedEarly}; ` : '';
    process.stdout.write(
      `${stopped}final test accuracy ${(100 * result.final.testAccuracy).toFixed(2)}%; best ${result.best.by} accuracy ${(100 * result.best.accuracy).toFixed(2)}% at epoch ${result.best.epoch}` +
        `${result.best.metric.endsWith('Accuracy') ? '' : ` (${result.best.metric} ${result.best.value.toFixed(4)})`}\n` +
        `best weights: ${out}\ncheckpoint: ${checkpointPath}\n`,
    );
  } catch (err) {
    bar.done();
    if (message(err).startsWith('cannot resume') || err instanceof RangeError) throw new InputError(message(err));
    throw err;
  } finally {
    model.dispose();
  }
}
