// `torchlet evaluate` (and `torchlet ensemble`): scores saved weights, or an ensemble of
// them, on the test set or a validation split, with per-class metrics, a confusion matrix
// and charts as text, JSON and PNG.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { loadRawDataset, type DatasetName } from '../data/mnist.js';
import { Dataset, loadKaggleCsv } from '../dataset.js';
import { Ensemble, parseMember, readEnsembleFile, type EnsembleEntry, type Vote } from '../ensemble/index.js';
import { classificationReport, confusionMatrix, formatReport, type ClassificationReport } from '../metrics.js';
import { Model } from '../model.js';
import { runWeights } from './run-weights.js';
import { models, type ModelName } from '../zoo/index.js';
import { classMetricsPng, confusionMatrixPng, overallMetricsPng } from '../plot.js';
import { NORMALIZATIONS, withNormalization, type NormalizationName } from '../recipe.js';
import { stratifiedSplit } from '../split.js';
import { InputError, asInput, loadWeights, nonNegativeInt, parseDataset, positiveInt, positiveNumber } from './common.js';

// Both datasets have ten classes; only Fashion-MNIST's need names to be readable.
const CLASSES = 10;
const CLASS_NAMES: Partial<Record<DatasetName, string[]>> = {
  'fashion-mnist': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
};

export interface EvaluateFlags {
  model?: ModelName;
  weights?: string;
  member?: string[];
  ensemble?: string;
  vote?: Vote;
  normalize?: NormalizationName;
  dataDir?: string;
  dataset: string;
  split?: 'test' | 'val';
  valSplit: number;
  trainLimit?: number;
  seed: number;
  device: string;
  batchSize?: number;
  outDir: string;
  json?: boolean;
}

/** The options that choose what to score and on which images: shared by evaluate, ensemble and submit. */
export function addScorerOptions(cmd: Command, withData = true): Command {
  cmd
    .addOption(new Option('--model <name>', 'architecture the weights belong to').choices(Object.keys(models)))
    .option('--weights <file>', 'a state_dict written by torchlet train or torch.save(model.state_dict())')
    .option('--member <model=weights>', "an ensemble member, MODEL=WEIGHTS[@NORMALISATION] (repeat for each member)", (v: string, acc: string[] = []) => [...acc, v])
    .option('--ensemble <file>', 'an ensemble described in YAML or JSON (name, vote, members: [{ model, weights, normalize? }])')
    .addOption(new Option('--vote <kind>', "ensemble vote: 'hard' (majority) or 'soft' (mean probability); default hard, or the file's").choices(['hard', 'soft']))
    .addOption(new Option('--normalize <preset>', 'the input normalisation the weights were trained with (default mnist)').choices(Object.keys(NORMALIZATIONS)))
    .option('--device <device>', "'cpu', 'cuda', 'cuda:N' or 'auto'", 'auto')
    .option('--batch-size <n>', 'evaluation batch size', positiveInt('--batch-size'));
  if (withData) {
    cmd
      .option('--data-dir <dir>', 'folder holding the four IDX .gz files (default: data/mnist, TORCHLET_DATA, or the download cache)')
      .option('--dataset <name>', "'mnist', 'fashion-mnist' or 'kaggle:DIR'", (v: string) => (parseDataset(v), v), 'mnist')
      .addOption(new Option('--split <split>', "'test' (default; Kaggle's test.csv has no labels, so 'val' there) or 'val', the validation split train --val-split held out").choices(['test', 'val']))
      .option('--val-split <n>', 'with --split val: the same --val-split, --seed and --train-limit as the training run', positiveNumber('--val-split'), 0.1)
      .option('--train-limit <n>', 'with --split val: the training run\'s --train-limit', positiveInt('--train-limit'))
      .option('--seed <n>', 'with --split val: the training run\'s seed', nonNegativeInt('--seed'), 42)
      .option('--out-dir <dir>', 'where the charts (<name>-confusion.png, -classes.png, -overall.png) and <name>-report.json go', 'reports')
      .option('--json', 'print the JSON report instead of the text one');
  }
  return cmd;
}

export function registerEvaluate(program: Command): void {
  addScorerOptions(
    program
      .command('evaluate')
      .description('score saved weights (or an ensemble) on the test set or a validation split: accuracy, per-class precision/recall/F1, a confusion matrix and charts')
      .option('--run <id>', 'score the best weights of a recorded run (and its model) instead of --weights')
      .option('--store <url>', 'the run store of --run (default: TORCHLET_STORE or ./torchlet-runs/runs.db)'),
  ).action(async (flags: EvaluateFlags & { run?: string; store?: string }) => {
    if (flags.run === undefined) return runEvaluate(flags);
    if (flags.weights !== undefined || flags.member !== undefined || flags.ensemble !== undefined) throw new InputError('give --run, or --weights / an ensemble, not both');
    const fromRun = await runWeights(flags.run, flags.store, flags.model);
    try {
      await runEvaluate({ ...flags, model: fromRun.model, weights: fromRun.path, ...(fromRun.normalize !== undefined && { normalize: fromRun.normalize }) });
    } finally {
      fromRun.dispose();
    }
  });
}

/** What the flags ask to score: one model, or an ensemble (of --member entries or a file). */
export type Scorer = { kind: 'model'; name: string; model: Model } | { kind: 'ensemble'; name: string; ensemble: Ensemble };

export function buildScorer(flags: Pick<EvaluateFlags, 'model' | 'weights' | 'member' | 'ensemble' | 'vote' | 'normalize' | 'device'>): Scorer {
  const members = flags.member ?? [];
  if (members.length > 0 || flags.ensemble !== undefined) {
    if (flags.model !== undefined || flags.weights !== undefined) throw new InputError('give either --model and --weights, or an ensemble (--member ... or --ensemble FILE), not both');
    if (members.length > 0 && flags.ensemble !== undefined) throw new InputError('give the ensemble as --member flags or as --ensemble FILE, not both');
    const file = flags.ensemble !== undefined ? asInput('bad --ensemble', () => readEnsembleFile(flags.ensemble ?? '')) : undefined;
    const entries: EnsembleEntry[] = file?.members ?? members.map((m) => asInput('bad --member', () => parseMember(m)));
    const vote = flags.vote ?? file?.vote ?? 'hard';
    const name = file?.name ?? 'ensemble';
    const ensemble = asInput('cannot build the ensemble', () => Ensemble.fromFiles(entries, { vote, name, device: flags.device }));
    return { kind: 'ensemble', name, ensemble };
  }
  if (flags.model === undefined || flags.weights === undefined) throw new InputError('give --model and --weights (or an ensemble: --member MODEL=WEIGHTS ..., or --ensemble FILE)');
  const spec = flags.normalize !== undefined ? withNormalization(models[flags.model], flags.normalize) : models[flags.model];
  // Weights are checked before the dataset loads, so a wrong file fails fast.
  const model = asInput('bad --device', () => new Model(spec, { device: flags.device }));
  try {
    loadWeights(model, flags.model, flags.weights);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { kind: 'model', name: flags.model, model };
}

export function disposeScorer(s: Scorer): void {
  if (s.kind === 'model') s.model.dispose();
  else s.ensemble.dispose();
}

/** The labelled images the flags ask for: the test set, or the seeded stratified validation split. */
async function loadSplit(flags: EvaluateFlags): Promise<{ data: Dataset; labels: Uint8Array; what: string; classNames?: string[] }> {
  const choice = asInput('bad --dataset', () => parseDataset(flags.dataset));
  const split = flags.split ?? (choice.kind === 'kaggle' ? 'val' : 'test');
  if (choice.kind === 'kaggle') {
    if (split === 'test') throw new InputError("Kaggle's test.csv has no labels to score against: use --split val (or `torchlet submit` for a submission)");
    const kaggle = await loadKaggleCsv(choice.dir, { ...(flags.trainLimit !== undefined && { trainLimit: flags.trainLimit }) });
    kaggle.test?.dispose();
    const { train, val } = asInput('bad --val-split', () => stratifiedSplit(kaggle.train, { size: flags.valSplit, seed: flags.seed }));
    train.dispose();
    kaggle.train.dispose();
    return { data: val, labels: val.labels(), what: `Kaggle train.csv validation split (${val.size} images)` };
  }
  const raw = await loadRawDataset({ dataset: choice.kind, ...(flags.dataDir !== undefined && { dataDir: flags.dataDir }) });
  const classNames = CLASS_NAMES[choice.kind];
  if (split === 'test') return { data: Dataset.fromRaw(raw.test), labels: raw.test.labels, what: `${choice.kind} test set`, ...(classNames && { classNames }) };
  const limit = Math.min(flags.trainLimit ?? raw.train.count, raw.train.count);
  const pixels = raw.train.rows * raw.train.cols;
  const all = Dataset.fromArrays(raw.train.images.subarray(0, limit * pixels), raw.train.labels.subarray(0, limit), [limit, 1, raw.train.rows, raw.train.cols]);
  const { train, val } = asInput('bad --val-split', () => stratifiedSplit(all, { size: flags.valSplit, seed: flags.seed }));
  train.dispose();
  all.dispose();
  return { data: val, labels: val.labels(), what: `${choice.kind} validation split`, ...(classNames && { classNames }) };
}

export async function runEvaluate(flags: EvaluateFlags): Promise<void> {
  const scorer = buildScorer(flags);
  try {
    const { data, labels, what, classNames } = await loadSplit(flags);
    let predictions: Uint8Array;
    let loss: number | undefined;
    let seconds: number;
    let memberRows: { name: string; report: ClassificationReport }[] = [];
    try {
      if (scorer.kind === 'model') {
        const stats = await scorer.model.evaluate(data, { ...(flags.batchSize !== undefined && { batchSize: flags.batchSize }) });
        predictions = stats.predictions;
        loss = stats.loss;
        seconds = stats.seconds;
      } else {
        const r = await scorer.ensemble.evaluate(data);
        predictions = r.predictions;
        seconds = r.seconds;
        memberRows = r.members.map((m) => ({ name: m.name, report: classificationReport(confusionMatrix(labels, m.predictions, CLASSES)) }));
      }
    } finally {
      data.dispose();
    }

    const matrix = confusionMatrix(labels, predictions, CLASSES);
    const report = classificationReport(matrix);
    const params = scorer.kind === 'model' ? scorer.model.numParams() : scorer.ensemble.numParams();
    const device = scorer.kind === 'model' ? scorer.model.device : (scorer.ensemble.members[0]?.model.device ?? flags.device);
    const json = {
      ...(scorer.kind === 'model'
        ? { model: scorer.name, weights: flags.weights }
        : { ensemble: scorer.name, vote: scorer.ensemble.vote, members: memberRows.map((m) => ({ name: m.name, accuracy: m.report.accuracy, macro: m.report.macro })) }),
      dataset: flags.dataset,
      split: what,
      device,
      params,
      count: labels.length,
      ...(loss !== undefined && { loss }),
      seconds,
      ...report,
      ...(classNames && { classNames }),
      confusionMatrix: matrix,
    };

    mkdirSync(flags.outDir, { recursive: true });
    const base = join(flags.outDir, scorer.name);
    const pct = `${(100 * report.accuracy).toFixed(2)}% accuracy`;
    const overall = [...memberRows, { name: scorer.name, report }].map((r) => ({ name: r.name, accuracy: r.report.accuracy, ...r.report.macro }));
    const files = [`${base}-confusion.png`, `${base}-classes.png`, `${base}-overall.png`, `${base}-report.json`];
    writeFileSync(files[0] ?? '', await confusionMatrixPng(matrix, `${scorer.name} on the ${what}: ${pct}`, classNames));
    writeFileSync(files[1] ?? '', await classMetricsPng(report.perClass, `${scorer.name}: precision, recall and F1 per class`, classNames));
    writeFileSync(files[2] ?? '', await overallMetricsPng(overall, `${scorer.name}: accuracy and macro averages`));
    writeFileSync(files[3] ?? '', `${JSON.stringify(json, null, 2)}\n`);

    if (flags.json) {
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      process.stderr.write(`wrote ${files.join(', ')}\n`);
    } else {
      const members =
        memberRows.length > 0
          ? `members (one pass per batch, ${scorer.kind === 'ensemble' ? scorer.ensemble.vote : ''} vote):\n${memberRows.map((m) => `  ${m.name.padEnd(20)} accuracy ${(100 * m.report.accuracy).toFixed(2)}%, macro f1 ${m.report.macro.f1.toFixed(4)}`).join('\n')}\n\n`
          : '';
      process.stdout.write(
        `${scorer.name} (${params} parameters) on the ${what} (${labels.length} images), device ${device}` +
          `${loss !== undefined ? `, loss ${loss.toFixed(4)}` : ''}, ${seconds.toFixed(1)}s\n\n${members}` +
          `${formatReport(report, matrix, classNames)}\n\nwrote ${files.join(', ')}\n`,
      );
    }
  } finally {
    disposeScorer(scorer);
  }
}
