// `torchlet train`: the reference recipe from the command line.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, extname } from 'node:path';
import { Command, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Model } from '../model.js';
import { loadMnist } from '../dataset.js';
import { isModelName, models, type ModelName } from '../zoo/index.js';
import { REFERENCE_RECIPE } from '../recipe.js';
import { getThreads, setThreads } from '../runtime.js';
import { resolveRecipe, train, type EpochRecord } from '../train.js';
import { RunLog, formatEpoch, logDir } from '../training-log.js';
import { InputError, asInput, message, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from './common.js';

const ConfigSchema = z
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
    .action(async (_opts: unknown, cmd: Command) => {
      await runTrain(cmd);
    });
}

async function runTrain(cmd: Command): Promise<void> {
  const flags = cmd.opts<TrainConfig & { config?: string; resume?: string }>();
  const fromFile = flags.config !== undefined ? readConfig(flags.config) : {};
  // Flags given on the command line beat the config file, which beats the recipe.
  const cli = Object.fromEntries(Object.entries(flags).filter(([key]) => cmd.getOptionValueSource(key) === 'cli'));
  const cfg: TrainConfig = { ...fromFile, ...cli };
  const modelName = cfg.model ?? 'super_light';
  if (!isModelName(modelName)) throw new InputError(`unknown model '${modelName}' (choose one of ${Object.keys(models).join(', ')})`);
  const aug = cfg.aug ?? false;
  const recipe = asInput('bad training options', () => resolveRecipe(cfg));
  if (cfg.threads !== undefined) setThreads(cfg.threads);

  const data = await loadMnist({
    ...(cfg.dataset !== undefined && { dataset: cfg.dataset }),
    ...(cfg.dataDir !== undefined && { dataDir: cfg.dataDir }),
    ...(cfg.trainLimit !== undefined && { trainLimit: cfg.trainLimit }),
  });
  let trainSet = data.train;
  let valSet;
  if (cfg.valSplit !== undefined && cfg.valSplit > 0) {
    if (cfg.valSplit >= data.train.size) throw new InputError(`--val-split ${cfg.valSplit} leaves no training images (the set has ${data.train.size})`);
    trainSet = data.train.slice(0, data.train.size - cfg.valSplit);
    valSet = data.train.slice(data.train.size - cfg.valSplit, data.train.size);
  }

  const model = asInput('bad --device', () => new Model(models[modelName as ModelName], { device: cfg.device ?? 'auto', seed: recipe.seed }));
  const out = cfg.out ?? `runs/${modelName}-${aug ? 'aug' : 'noaug'}.pt`;
  const checkpointPath = out.replace(/\.pt$/, '') + '.ckpt';
  mkdirSync(dirname(out), { recursive: true });
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
    const result = await train(
      model,
      { train: trainSet, test: data.test, ...(valSet && { val: valSet }) },
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
    process.stdout.write(
      `final test accuracy ${(100 * result.final.testAccuracy).toFixed(2)}%; best ${result.best.by} accuracy ${(100 * result.best.accuracy).toFixed(2)}% at epoch ${result.best.epoch}\n` +
        `best weights: ${out}\ncheckpoint: ${checkpointPath}\n`,
    );
  } catch (err) {
    bar.done();
    if (message(err).startsWith('cannot resume')) throw new InputError(message(err));
    throw err;
  } finally {
    model.dispose();
  }
}
