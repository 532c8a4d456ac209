// `torchlet train`: the reference recipe from the command line.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { ConfigError, prepareTraining, readConfig, resolveConfig, type TrainConfig } from '../config.js';
import { models } from '../models.js';
import { REFERENCE_RECIPE } from '../recipe.js';
import { getThreads, setThreads } from '../runtime.js';
import { train, type EpochRecord } from '../train.js';
import { RunLog, formatEpoch, logDir } from '../training-log.js';
import type { RunStore } from '../store/store.js';
import { InputError, message, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from './common.js';

export type { TrainConfig } from '../config.js';

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
    .description('train a model with the reference recipe (AdamW + OneCycleLR), evaluating after every epoch')
    .addOption(new Option('--model <name>', 'model to train (default super_light)').choices(Object.keys(models)))
    .option('--aug', 'augment with RandomAffine + RandomPerspective')
    .option('--no-aug', 'do not augment (overrides a config file)')
    .option('--epochs <n>', `epochs (default ${REFERENCE_RECIPE.epochs})`, positiveInt('--epochs'))
    .option('--batch-size <n>', `batch size (default ${REFERENCE_RECIPE.batchSize})`, positiveInt('--batch-size'))
    .option('--lr <x>', `AdamW base learning rate (default ${REFERENCE_RECIPE.lr}; OneCycleLR starts from max-lr / 10)`, positiveNumber('--lr'))
    .option('--max-lr <x>', `OneCycleLR peak learning rate (default ${REFERENCE_RECIPE.maxLr})`, positiveNumber('--max-lr'))
    .option('--weight-decay <x>', `AdamW weight decay (default ${REFERENCE_RECIPE.weightDecay})`, nonNegativeNumber('--weight-decay'))
    .option('--seed <n>', `random seed (default ${REFERENCE_RECIPE.seed})`, nonNegativeInt('--seed'))
    .option('--device <device>', "'cpu', 'cuda', 'cuda:N' or 'auto' (default 'auto')")
    .option('--threads <n>', 'libtorch intra-op threads (default: all cores)', positiveInt('--threads'))
    .option('--data-dir <dir>', 'folder holding the four IDX .gz files (default: data/mnist, TORCHLET_DATA, or the download cache)')
    .addOption(new Option('--dataset <name>', 'dataset (default mnist)').choices(['mnist', 'fashion-mnist']))
    .option('--out <file>', "best weights (a PyTorch state_dict); the resumable checkpoint goes beside it as .ckpt (default 'runs/<model>-<aug|noaug>.pt')")
    .option('--val-split <n>', 'hold out the last N training images and pick the best epoch by their accuracy', nonNegativeInt('--val-split'))
    .option('--train-limit <n>', 'train on the first N images only (quick experiments)', positiveInt('--train-limit'))
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

interface TrainFlags extends TrainConfig {
  config?: string;
  resume?: string;
  track: boolean;
  store?: string;
  experiment?: string;
  runName?: string;
}

const CONFIG_KEYS = new Set(['model', 'aug', 'epochs', 'batchSize', 'lr', 'maxLr', 'weightDecay', 'seed', 'device', 'threads', 'dataDir', 'dataset', 'out', 'valSplit', 'trainLimit']);

async function runTrain(cmd: Command): Promise<void> {
  const flags = cmd.opts<TrainFlags>();
  const configPath = flags.config;
  const fromFile = configPath !== undefined ? asConfigInput(() => readConfig(configPath)) : {};
  // Flags given on the command line beat the config file, which beats the recipe.
  const cli = Object.fromEntries(Object.entries(flags).filter(([key]) => CONFIG_KEYS.has(key) && cmd.getOptionValueSource(key) === 'cli'));
  const { config, recipe } = asConfigInput(() => resolveConfig({ ...fromFile, ...cli }, 'options'));
  if (config.threads !== undefined) setThreads(config.threads);
  const prepared = await prepareTraining(config, recipe).catch((err: unknown) => {
    if (err instanceof ConfigError && err.issues[0]?.field === 'device') throw new InputError(`bad --device: ${err.issues[0].message}`);
    throw err instanceof ConfigError ? new InputError(err.message) : err;
  });
  const { model, data } = prepared;
  const modelName = config.model;
  const aug = config.aug;
  const out = config.out ?? `runs/${modelName}-${aug ? 'aug' : 'noaug'}.pt`;
  const checkpointPath = out.replace(/\.pt$/, '') + '.ckpt';
  mkdirSync(dirname(out), { recursive: true });
  let store: RunStore | undefined;
  try {
    // The store's modules (SQL drivers, Kysely) load only for a tracked run, keeping the other commands quick to start.
    const tracking = flags.track ? await import('../store/index.js') : undefined;
    if (tracking) store = await tracking.openStore(flags.store).catch((err: unknown) => Promise.reject(new InputError(message(err))));
    const log = new RunLog(logDir(), { model: modelName, aug, params: model.numParams(), device: model.device, threads: getThreads(), recipe });
    const bar = progressReporter(modelName, recipe.epochs);
    process.stderr.write(
      `training ${modelName} (${model.numParams()} parameters) on ${model.device} with ${getThreads()} threads, aug=${aug}, ${recipe.epochs} epochs\n` +
        `logs: ${log.logPath}\n`,
    );
    const onEpoch = (r: EpochRecord): void => {
      bar.done();
      log.epoch(r);
      process.stdout.write(`${formatEpoch(r)}\n`);
    };
    try {
      const result = await train(model, data, {
        ...recipe,
        aug,
        bestPath: out,
        checkpointPath,
        ...(flags.resume !== undefined && { resume: flags.resume }),
        onProgress: (epoch, p) => bar.update(epoch, p.step, p.steps, p.loss, p.accuracy),
        onEpoch,
        onResume: (history) => history.forEach((r) => log.epoch(r)),
        ...(store && {
          store,
          config: { ...config, threads: getThreads() },
          ...(flags.experiment !== undefined && { experiment: flags.experiment }),
          runName: flags.runName ?? `${modelName}-${aug ? 'aug' : 'noaug'}`,
        }),
      });
      process.stdout.write(
        `final test accuracy ${(100 * result.final.testAccuracy).toFixed(2)}%; best ${result.best.by} accuracy ${(100 * result.best.accuracy).toFixed(2)}% at epoch ${result.best.epoch}\n` +
          `best weights: ${out}\ncheckpoint: ${checkpointPath}\n`,
      );
      if (store && tracking && result.runId !== undefined) {
        await store.putArtifact(result.runId, 'train.log', readFileSync(log.logPath));
        await tracking.recordEvaluation(store, result.runId, model, out, data.test, prepared.testLabels, config.dataset);
        process.stdout.write(`run ${result.runId} recorded in ${store.location}\n`);
      }
    } catch (err) {
      bar.done();
      if (message(err).startsWith('cannot resume')) throw new InputError(message(err));
      throw err;
    }
  } finally {
    prepared.dispose();
    await store?.close();
  }
}

function asConfigInput<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw err instanceof ConfigError ? new InputError(err.message) : err;
  }
}
