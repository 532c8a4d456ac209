#!/usr/bin/env node
// torchlet's command line: train, evaluate, plot, predict, extract, export, serve, runs, worker, tune.
import { Command, CommanderError } from 'commander';
import { DataError } from '../data/errors.js';
import { InputError, message } from './common.js';
import { registerTrain } from './train.js';
import { registerEvaluate } from './evaluate.js';
import { registerPlot } from './plot.js';
import { registerRuns } from './runs.js';
import { registerWorker } from './worker.js';
import { registerEnsemble } from './ensemble.js';
import { registerSubmit } from './submit.js';
import { registerPredict } from './predict.js';
import { registerExtract } from './extract.js';
import { registerExport } from './export.js';
import { registerServe } from './serve.js';
import { registerTune } from './tune.js';

const program = new Command('torchlet')
  .description('Tiny CNNs on MNIST, trained natively with libtorch')
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(str) });

registerTrain(program);
registerEvaluate(program);
registerPlot(program);
registerRuns(program);
registerWorker(program);
registerEnsemble(program);
registerSubmit(program);
registerPredict(program);
registerExtract(program);
registerExport(program);
registerServe(program);
registerTune(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; every parse error is a usage error.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof InputError || err instanceof DataError) {
    process.stderr.write(`torchlet: ${message(err)}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`torchlet: ${err instanceof Error && process.env.TORCHLET_DEBUG ? err.stack : message(err)}\n`);
    process.exitCode = 1;
  }
}
