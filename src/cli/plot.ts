// `torchlet plot`: training curves from a run's .jsonl log.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Command } from 'commander';
import { trainingCurvesPng } from '../plot.js';
import { parseRunLog } from '../training-log.js';
import { asInput } from './common.js';

export function registerPlot(program: Command): void {
  program
    .command('plot')
    .description('draw loss and accuracy per epoch from a training log (.jsonl)')
    .argument('<run.jsonl>', 'a log written by torchlet train (see training-logs/)')
    .option('--out <file.png>', 'where the chart goes (default: the log path with .png)')
    .action(async (path: string, flags: { out?: string }) => {
      const text = asInput(`cannot read '${path}'`, () => readFileSync(path, 'utf8'));
      const records = asInput('not a training log', () => parseRunLog(text, path));
      const out = flags.out ?? `${path.slice(0, path.length - extname(path).length)}.png`;
      writeFileSync(out, await trainingCurvesPng(records, basename(path, extname(path))));
      process.stdout.write(`wrote ${out} (${records.length} epochs)\n`);
    });
}
