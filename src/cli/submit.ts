// `torchlet submit`: a Kaggle Digit Recognizer submission (ImageId,Label) for test.csv,
// from one model or an ensemble.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { readKaggleCsv, submissionCsv } from '../data/kaggle.js';
import { Dataset } from '../dataset.js';
import { InputError } from './common.js';
import { addScorerOptions, buildScorer, disposeScorer, type EvaluateFlags } from './evaluate.js';

export function registerSubmit(program: Command): void {
  addScorerOptions(
    program
      .command('submit')
      .description("write a Kaggle Digit Recognizer submission (ImageId,Label, ids from 1) for a test.csv, from --model/--weights or an ensemble"),
    false,
  )
    .requiredOption('--test <file>', "Kaggle's test.csv (pixel0..pixel783)")
    .requiredOption('--out <file>', 'the submission CSV to write')
    .action(async (flags: EvaluateFlags & { test: string; out: string }) => {
      const scorer = buildScorer(flags);
      try {
        const test = await readKaggleCsv(flags.test, false);
        // Kaggle holds the labels back: the dataset's are placeholders, only predictions are used.
        const data = Dataset.fromArrays(test.images, new Uint8Array(test.count), [test.count, 1, test.rows, test.cols]);
        let predictions: Uint8Array;
        try {
          predictions =
            scorer.kind === 'model'
              ? (await scorer.model.evaluate(data, { ...(flags.batchSize !== undefined && { batchSize: flags.batchSize }) })).predictions
              : (await scorer.ensemble.evaluate(data)).predictions;
        } finally {
          data.dispose();
        }
        try {
          writeFileSync(flags.out, submissionCsv(predictions));
        } catch (err) {
          throw new InputError(`cannot write '${flags.out}': ${err instanceof Error ? err.message : String(err)}`);
        }
        process.stdout.write(`wrote ${flags.out}: ${predictions.length} predictions by ${scorer.name}\n`);
      } finally {
        disposeScorer(scorer);
      }
    });
}
