// Writes Kaggle Digit Recognizer files from the vendored MNIST, since the competition's own
// cannot be downloaded here:
//   npx tsx scripts/kaggle-csv.ts OUT_DIR [--train-limit N] [--test-limit N]
// OUT_DIR/train.csv          label,pixel0..pixel783   (MNIST's training images)
// OUT_DIR/test.csv           pixel0..pixel783         (MNIST's test images, no labels)
// OUT_DIR/test_labels.csv    ImageId,Label            (the held-back answers)
// OUT_DIR/sample_submission.csv  ImageId,Label with every Label 0, as Kaggle ships it
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadRawDataset, type RawSplit } from '../src/data/mnist.js';
import { submissionCsv } from '../src/data/kaggle.js';

function csv(split: RawSplit, count: number, labelled: boolean): string {
  const pixels = split.rows * split.cols;
  const header = [...(labelled ? ['label'] : []), ...Array.from({ length: pixels }, (_, i) => `pixel${i}`)].join(',');
  const lines = [header];
  for (let r = 0; r < count; r++) {
    const row = Array.from(split.images.subarray(r * pixels, (r + 1) * pixels));
    lines.push((labelled ? [split.labels[r], ...row] : row).join(','));
  }
  return `${lines.join('\n')}\n`;
}

export async function writeKaggleCsvs(outDir: string, options: { trainLimit?: number; testLimit?: number; dataDir?: string } = {}): Promise<{ train: number; test: number }> {
  const raw = await loadRawDataset({ dataset: 'mnist', ...(options.dataDir !== undefined && { dataDir: options.dataDir }) });
  const train = Math.min(options.trainLimit ?? raw.train.count, raw.train.count);
  const test = Math.min(options.testLimit ?? raw.test.count, raw.test.count);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'train.csv'), csv(raw.train, train, true));
  writeFileSync(join(outDir, 'test.csv'), csv(raw.test, test, false));
  writeFileSync(join(outDir, 'test_labels.csv'), submissionCsv(raw.test.labels.subarray(0, test)));
  writeFileSync(join(outDir, 'sample_submission.csv'), submissionCsv(new Uint8Array(test)));
  return { train, test };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ options: { 'train-limit': { type: 'string' }, 'test-limit': { type: 'string' }, 'data-dir': { type: 'string' } }, allowPositionals: true });
  const out = positionals[0];
  if (out === undefined) {
    process.stderr.write('usage: npx tsx scripts/kaggle-csv.ts OUT_DIR [--train-limit N] [--test-limit N] [--data-dir DIR]\n');
    process.exit(2);
  }
  const limit = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) <= 0) {
      process.stderr.write(`--${name} must be a positive integer, got '${v}'\n`);
      process.exit(2);
    }
    return Number(v);
  };
  const trainLimit = limit(values['train-limit'], 'train-limit');
  const testLimit = limit(values['test-limit'], 'test-limit');
  const n = await writeKaggleCsvs(out, {
    ...(trainLimit !== undefined && { trainLimit }),
    ...(testLimit !== undefined && { testLimit }),
    ...(values['data-dir'] !== undefined && { dataDir: values['data-dir'] }),
  });
  process.stdout.write(`wrote ${out}/train.csv (${n.train} rows), test.csv and test_labels.csv (${n.test} rows), sample_submission.csv\n`);
}
