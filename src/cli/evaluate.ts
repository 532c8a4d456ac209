// `torchlet evaluate`: scores saved weights on the test set, with per-class metrics and a
// confusion matrix as text, JSON and PNG.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { loadRawDataset, type DatasetName } from '../data/mnist.js';
import { Dataset } from '../dataset.js';
import { classificationReport, confusionMatrix, formatReport } from '../metrics.js';
import { Model } from '../model.js';
import { models, type ModelName } from '../zoo/index.js';
import { confusionMatrixPng } from '../plot.js';
import { asInput, loadWeights, positiveInt } from './common.js';

// Both datasets have ten classes; only Fashion-MNIST's need names to be readable.
const CLASSES = 10;
const CLASS_NAMES: Partial<Record<DatasetName, string[]>> = {
  'fashion-mnist': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
};

interface EvaluateFlags {
  model: ModelName;
  weights: string;
  dataDir?: string;
  dataset: DatasetName;
  device: string;
  batchSize?: number;
  outDir: string;
  json?: boolean;
}

export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description('score saved weights on the test set: accuracy, per-class precision/recall/F1 and a confusion matrix')
    .addOption(new Option('--model <name>', 'architecture the weights belong to').choices(Object.keys(models)).makeOptionMandatory())
    .requiredOption('--weights <file>', 'a state_dict written by torchlet train or torch.save(model.state_dict())')
    .option('--data-dir <dir>', 'folder holding the four IDX .gz files (default: data/mnist, TORCHLET_DATA, or the download cache)')
    .addOption(new Option('--dataset <name>', 'dataset').choices(['mnist', 'fashion-mnist']).default('mnist'))
    .option('--device <device>', "'cpu', 'cuda', 'cuda:N' or 'auto'", 'auto')
    .option('--batch-size <n>', 'evaluation batch size', positiveInt('--batch-size'))
    .option('--out-dir <dir>', 'where <model>-confusion.png and <model>-report.json go', 'reports')
    .option('--json', 'print the JSON report instead of the text one')
    .action(async (flags: EvaluateFlags) => {
      await runEvaluate(flags);
    });
}

async function runEvaluate(flags: EvaluateFlags): Promise<void> {
  const spec = models[flags.model];
  // Weights are checked before the dataset loads, so a wrong file fails fast.
  const model = asInput('bad --device', () => new Model(spec, { device: flags.device }));
  try {
    loadWeights(model, flags.model, flags.weights);
    const raw = await loadRawDataset({ dataset: flags.dataset, ...(flags.dataDir !== undefined && { dataDir: flags.dataDir }) });
    const test = Dataset.fromRaw(raw.test);
    const stats = await model.evaluate(test, { ...(flags.batchSize !== undefined && { batchSize: flags.batchSize }) }).finally(() => test.dispose());

    const matrix = confusionMatrix(raw.test.labels, stats.predictions, CLASSES);
    const report = classificationReport(matrix);
    const classNames = CLASS_NAMES[flags.dataset];
    const json = {
      model: flags.model,
      weights: flags.weights,
      dataset: flags.dataset,
      device: model.device,
      count: stats.count,
      loss: stats.loss,
      ...report,
      ...(classNames && { classNames }),
      confusionMatrix: matrix,
    };

    mkdirSync(flags.outDir, { recursive: true });
    const pngPath = join(flags.outDir, `${flags.model}-confusion.png`);
    const jsonPath = join(flags.outDir, `${flags.model}-report.json`);
    const title = `${flags.model} on ${flags.dataset} test: ${(100 * report.accuracy).toFixed(2)}% accuracy`;
    writeFileSync(pngPath, await confusionMatrixPng(matrix, title, classNames));
    writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);

    if (flags.json) {
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      process.stderr.write(`wrote ${pngPath} and ${jsonPath}\n`);
    } else {
      process.stdout.write(
        `${flags.model} (${model.numParams()} parameters) on the ${flags.dataset} test set (${stats.count} images), ` +
          `device ${model.device}, loss ${stats.loss.toFixed(4)}, ${stats.seconds.toFixed(1)}s\n\n` +
          `${formatReport(report, matrix, classNames)}\n\nwrote ${pngPath} and ${jsonPath}\n`,
      );
    }
  } finally {
    model.dispose();
  }
}
