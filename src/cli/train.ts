// `torchlet train`: the reference recipe from the command line.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import {
  AUGMENT_NAMES,
  ConfigError,
  ConfigSchema,
  choiceObject,
  NORMALIZATION_NAMES,
  OPTIMIZERS,
  SCHEDULERS,
  parseConfig,
  prepareTraining,
  readConfig,
  resolveConfig,
  type PreparedTraining,
  type TrainConfig,
} from '../config.js';
import { models } from '../zoo/index.js';
import { METRICS, REFERENCE_RECIPE, type EarlyStopping, type OptimizerChoice, type SchedulerChoice } from '../recipe.js';
import { getThreads } from '../runtime.js';
import { TrainingAborted, train, type EpochRecord } from '../train.js';
import { RunLog, formatEpoch, logDir } from '../training-log.js';
import type { RunStore } from '../store/store.js';
import { InputError, message, parseDataset, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from './common.js';

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
    .option('--label-smoothing <x>', 'cross-entropy against smoothed targets, e.g. 0.05 (default 0)', nonNegativeNumber('--label-smoothing'))
    .option('--ema-decay <x>', 'evaluate, keep and release an exponential moving average of the weights, e.g. 0.999', positiveNumber('--ema-decay'))
    .option('--recalibrate-batch-norm', "after each epoch, recompute batch norm's running statistics on the clean training images (PyTorch's update_bn)")
    .option('--seed <n>', `random seed (default ${REFERENCE_RECIPE.seed})`, nonNegativeInt('--seed'))
    .option('--device <device>', "'cpu', 'cuda', 'cuda:N' or 'auto' (default 'auto')")
    .option('--threads <n>', 'libtorch intra-op threads (default: all cores)', positiveInt('--threads'))
    .option('--data-dir <dir>', 'folder holding the four IDX .gz files (default: data/mnist, TORCHLET_DATA, or the download cache)')
    .option('--dataset <name>', "'mnist' (default), 'fashion-mnist', or 'kaggle:DIR' for Kaggle's train.csv in DIR (its per-epoch test figures come from a held-out split, --val-split, default 0.1)", (v: string) => (parseDataset(v), v))
    .option('--out <file>', "best weights (a PyTorch state_dict); the resumable checkpoint goes beside it as .ckpt (default 'runs/<model>-<aug|noaug>.pt')")
    .option('--val-split <n>', 'hold out a stratified, seeded validation set: N images, or a fraction (0.1); the best epoch is chosen on it', positiveNumber('--val-split'))
    .option('--train-limit <n>', 'train on the first N images only (quick experiments)', positiveInt('--train-limit'))
    .option('--test-limit <n>', "evaluate each epoch on the first N test images only (smoke runs: the figures are then not the test set's)", positiveInt('--test-limit'))
    .option('--resume <file>', 'continue from a .ckpt written by an earlier run with the same options')
    .option('--config <file>', 'read options from a .yaml or .json file; flags given on the command line win')
    .option('--no-track', 'do not record the run in the run store')
    .option('--store <url>', "run store: an SQLite file or postgres://... (default: TORCHLET_STORE or ./torchlet-runs/runs.db)")
    .option('--experiment <name>', "the run's experiment in the store (default 'default')")
    .option('--run-name <name>', "the run's name in the store (default: <model>-<aug|noaug>)")
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
  emaDecay?: number;
  scheduler?: SchedulerChoice['type'];
  config?: string;
  resume?: string;
  track: boolean;
  store?: string;
  experiment?: string;
  runName?: string;
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

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Merges the recipe flags into the config file's optimizer, scheduler and early stopping. */
function recipeFromFlags(file: TrainConfig, cli: Partial<Flags>): { optimizer?: OptimizerChoice; scheduler?: SchedulerChoice; earlyStopping?: EarlyStopping } {
  const out: { optimizer?: OptimizerChoice; scheduler?: SchedulerChoice; earlyStopping?: EarlyStopping } = {};
  // A type changed on the command line starts from that type's defaults.
  const base = <T extends { type: string }>(fromFile: T | undefined, type: string | undefined): T | undefined =>
    fromFile && (type === undefined || type === fromFile.type) ? fromFile : undefined;
  const fileOptimizer = choiceObject<OptimizerChoice>(file.optimizer);
  const optFlags = defined({ momentum: cli.momentum, nesterov: cli.nesterov });
  const optimizer = { ...(base(fileOptimizer, cli.optimizer) ?? { type: cli.optimizer ?? fileOptimizer?.type ?? REFERENCE_RECIPE.optimizer.type }), ...optFlags };
  if (fileOptimizer !== undefined || cli.optimizer !== undefined || Object.keys(optFlags).length > 0) {
    out.optimizer = { ...optimizer, ...(cli.optimizer !== undefined && { type: cli.optimizer }) } as OptimizerChoice;
  }
  const fileScheduler = choiceObject<SchedulerChoice>(file.scheduler as SchedulerChoice | SchedulerChoice['type'] | undefined);
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

/** The options in --config's schema: the file's, with the flags given on the command line merged in. */
function configFrom(cmd: Command): { flags: Flags; config: TrainConfig } {
  const flags = cmd.opts<Flags>();
  const fromFile = flags.config !== undefined ? configInput(readConfig, flags.config) : {};
  // Flags given on the command line beat the config file, which beats the recipe.
  const cli: Partial<Flags> = Object.fromEntries(Object.entries(flags).filter(([key]) => cmd.getOptionValueSource(key) === 'cli'));
  const keys = Object.keys(ConfigSchema.shape);
  const plain = Object.fromEntries(Object.entries(cli).filter(([key]) => keys.includes(key) && !['optimizer', 'scheduler', 'augment'].includes(key)));
  // The recipe's nested parts (optimizer, scheduler, early stopping) merge flag by flag.
  const augment = cli.augment ?? fromFile.augment;
  const merged = {
    ...fromFile,
    ...plain,
    ...recipeFromFlags(fromFile, cli),
    ...(augment !== undefined && { augment }),
    ...(cli.emaDecay !== undefined && { ema: { decay: cli.emaDecay } }),
  };
  return { flags, config: configInput((raw) => parseConfig(raw, 'the training options'), merged) };
}

function configInput<A, T>(fn: (arg: A) => T, arg: A): T {
  try {
    return fn(arg);
  } catch (err) {
    throw err instanceof ConfigError ? new InputError(err.message) : err;
  }
}

/** A resolved option that does not work names its flag: "bad --val-split: ...". */
function flagError(err: unknown): unknown {
  if (!(err instanceof ConfigError)) return err;
  const [issue, ...more] = err.issues;
  if (issue === undefined || more.length > 0 || issue.field.startsWith('(')) return new InputError(err.message);
  return new InputError(`bad --${issue.field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${issue.message}`);
}

async function runTrain(cmd: Command): Promise<void> {
  const { flags, config: given } = configFrom(cmd);
  let resolved: ReturnType<typeof resolveConfig>;
  let prepared: PreparedTraining;
  try {
    resolved = resolveConfig(given, 'the training options', models);
    prepared = await prepareTraining(resolved.config, resolved.recipe, 'the training options', models);
  } catch (err) {
    throw flagError(err);
  }
  const { config: cfg, recipe } = resolved;
  const { model } = prepared;
  const { train: trainSet, test: testSet, val: valSet } = prepared.data;
  const modelName = cfg.model;
  const aug = cfg.aug;
  const out = cfg.out ?? `runs/${modelName}-${aug ? 'aug' : 'noaug'}.pt`;
  const checkpointPath = out.replace(/\.pt$/, '') + '.ckpt';
  mkdirSync(dirname(out), { recursive: true });
  let store: RunStore | undefined;
  // The store's modules (SQL drivers, Kysely) load only for a tracked run, keeping the other commands quick to start.
  const tracking = flags.track ? await import('../store/index.js') : undefined;
  if (tracking) store = await tracking.openStore(flags.store).catch((err: unknown) => Promise.reject(new InputError(message(err))));
  const log = new RunLog(logDir(), { model: modelName, aug, params: model.numParams(), device: model.device, threads: getThreads(), recipe });
  const bar = progressReporter(modelName, recipe.epochs);
  process.stderr.write(
    `training ${modelName} (${model.numParams()} parameters) on ${model.device} with ${getThreads()} threads, aug=${aug}, ${recipe.epochs} epochs, ` +
      `${recipe.optimizer.type} + ${recipe.scheduler.type}${recipe.earlyStopping ? `, early stopping (patience ${recipe.earlyStopping.patience})` : ''}\n` +
      `logs: ${log.logPath}\n`,
  );
  // Ctrl-C stops at the next step: the run ends as cancelled, and the checkpoint holds the last whole epoch.
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (abort.signal.aborted) process.exit(130);
    bar.done();
    process.stderr.write(`torchlet train: ${signal}: stopping (again to exit at once)\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
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
        signal: abort.signal,
        ...(store && {
          store,
          // The run's config in the schema of --config, so that it can be trained again.
          config: { ...given, model: modelName, aug, epochs: recipe.epochs, seed: recipe.seed, threads: getThreads() },
          ...(flags.experiment !== undefined && { experiment: flags.experiment }),
          runName: flags.runName ?? `${modelName}-${aug ? 'aug' : 'noaug'}`,
        }),
      },
    );
    const stopped = result.stoppedEarly !== undefined ? `early stopping ended the run after epoch ${result.stoppedEarly}; ` : '';
    process.stdout.write(
      `${stopped}final test accuracy ${(100 * result.final.testAccuracy).toFixed(2)}%; best ${result.best.by} accuracy ${(100 * result.best.accuracy).toFixed(2)}% at epoch ${result.best.epoch}` +
        `${result.best.metric.endsWith('Accuracy') ? '' : ` (${result.best.metric} ${result.best.value.toFixed(4)})`}\n` +
        `best weights: ${out}\ncheckpoint: ${checkpointPath}\n`,
    );
    if (store && tracking && result.runId !== undefined) {
      await store.putArtifact(result.runId, 'train.log', readFileSync(log.logPath));
      await tracking.recordEvaluation(store, result.runId, model, out, testSet, cfg.dataset);
      process.stdout.write(`run ${result.runId} recorded in ${store.location}\n`);
    }
  } catch (err) {
    bar.done();
    if (err instanceof TrainingAborted) {
      const resume = existsSync(checkpointPath) ? `; ${checkpointPath} holds the last finished epoch (continue with --resume ${checkpointPath})` : '';
      process.stderr.write(`torchlet train: interrupted${resume}${store ? '; the run is recorded as cancelled' : ''}\n`);
      process.exitCode = 130;
      return;
    }
    if (message(err).startsWith('cannot resume') || err instanceof RangeError) throw new InputError(message(err));
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    prepared.dispose();
    await store?.close();
  }
}
