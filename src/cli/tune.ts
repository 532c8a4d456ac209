// `torchlet tune`: hyperparameter search over the training recipe. Trials live in the run
// store (SQLite file or PostgreSQL), every trial is a recorded run, and any number of
// processes, here (--workers) or on other machines (--store postgres://...), work on one
// study. `tune show` and `tune export` read a study back.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { Command, Option } from 'commander';
import { loadMnist } from '../dataset.js';
import { Model } from '../model.js';
import { models, type ModelName } from '../models.js';
import { setThreads } from '../runtime.js';
import type { RunStore } from '../store/store.js';
import type { OwnedRun, RunSink, RunStart } from '../train.js';
import { optunaJournal } from '../tune/journal.js';
import { recipeFrom, runRecipeTrial } from '../tune/recipe-objective.js';
import { readSpace, type RecipeValues, type TuneSpace } from '../tune/space.js';
import type { SqlTuneStorage } from '../tune/sql-storage.js';
import { bestOf, createStudy, loadStudy, type Study } from '../tune/study.js';
import { SearchSpaceError } from '../tune/distributions.js';
import type { FrozenTrial } from '../tune/types.js';
import { InputError, message, positiveInt, positiveNumber } from './common.js';

interface RunFlags {
  space: string;
  trials?: number;
  timeout?: number;
  workers?: number;
  study?: string;
  store?: string;
  threads?: number;
  device?: string;
  dataDir?: string;
  heartbeat?: number;
  workerProcess?: boolean;
}

const DEFAULT_TRIALS = 24;

export function registerTune(program: Command): void {
  const tune = program.command('tune').description('search training recipes (TPE + pruning); trials are runs in the run store, shared by any number of workers');
  tune
    .command('run', { isDefault: true })
    .description('tune the recipe named by a search space file (the default subcommand)')
    .requiredOption('--space <file>', 'search space (.yaml/.json): params to search, fixed values, objective, sampler, pruner')
    .option('--trials <n>', `trials in the study, all workers together (default: the file's, else ${DEFAULT_TRIALS})`, positiveInt('--trials'))
    .option('--timeout <s>', 'start no new trial after this many seconds', positiveNumber('--timeout'))
    .option('--workers <k>', 'trials at once on this machine, each in its own process with cores/k threads (default 1)', positiveInt('--workers'))
    .option('--study <name>', "study name (default: the file's, else the file name); the same name joins the study")
    .option('--store <url>', 'run store: an SQLite file or postgres://... (default TORCHLET_STORE, else torchlet-runs/runs.db)')
    .option('--threads <n>', 'libtorch threads per worker (default: cores / workers)', positiveInt('--threads'))
    .option('--device <device>', "'cpu', 'cuda', 'cuda:N' or 'auto' (default 'auto')")
    .option('--data-dir <dir>', 'folder holding the MNIST .gz files')
    .addOption(new Option('--heartbeat <s>', 'seconds between heartbeats of a running trial (a trial silent for 3x this is failed and retried)').argParser(positiveNumber('--heartbeat')).default(10))
    .addOption(new Option('--worker-process').hideHelp())
    .action(async (_opts: unknown, cmd: Command) => {
      await runTune(cmd.opts<RunFlags>());
    });
  tune
    .command('show')
    .description("print a study's best trials, their parameters, and the best trial's test accuracy")
    .argument('<study>', 'study name')
    .option('--store <url>', 'run store (default TORCHLET_STORE, else torchlet-runs/runs.db)')
    .option('--top <n>', 'trials to list (default 10)', positiveInt('--top'))
    .action(async (name: string, flags: { store?: string; top?: number }) => {
      await withStudy(flags.store, name, async (study, storage) => {
        process.stdout.write(await describeStudy(study, storage, flags.top ?? 10));
      });
    });
  tune
    .command('export')
    .description("write a study in Optuna's JournalStorage format, for optuna-dashboard and Optuna's plots")
    .argument('<study>', 'study name')
    .requiredOption('--optuna-journal <file>', 'the journal file to write')
    .option('--store <url>', 'run store (default TORCHLET_STORE, else torchlet-runs/runs.db)')
    .action(async (name: string, flags: { store?: string; optunaJournal: string }) => {
      await withStudy(flags.store, name, async (study) => {
        const info = await study.store.getStudy(study.name);
        if (!info) throw new InputError(`no study named '${name}'`);
        const trials = await study.trials;
        writeFileSync(flags.optunaJournal, optunaJournal(info, trials));
        process.stdout.write(`wrote ${trials.length} trials of '${name}' to ${flags.optunaJournal}\n  python3 -c "import optuna; s = optuna.load_study(study_name='${name}', storage=optuna.storages.JournalStorage(optuna.storages.JournalFileStorage('${flags.optunaJournal}'))); print(s.best_trial)"\n`);
      });
    });
}

/** Opens the run store and the studies in it; the SQL drivers load only for the commands that need them. */
async function openTuneStore(location: string | undefined): Promise<SqlTuneStorage> {
  const [{ openStore }, { SqlTuneStorage }] = await Promise.all([import('../store/index.js'), import('../tune/sql-storage.js')]);
  return new SqlTuneStorage(await openStore(location));
}

async function withStudy(location: string | undefined, name: string, fn: (study: Study, storage: SqlTuneStorage) => Promise<void>): Promise<void> {
  const storage = await openTuneStore(location);
  try {
    const study = await loadStudy({ name, store: storage }).catch((err: unknown) => {
      throw new InputError(message(err));
    });
    await fn(study, storage);
  } finally {
    await storage.close();
  }
}

function studyName(flags: RunFlags, space: TuneSpace): string {
  return flags.study ?? space.study ?? basename(flags.space, extname(flags.space));
}

async function runTune(flags: RunFlags): Promise<void> {
  let space: TuneSpace;
  try {
    space = readSpace(flags.space);
  } catch (err) {
    if (err instanceof SearchSpaceError) throw new InputError(err.message);
    throw err;
  }
  const workers = flags.workers ?? 1;
  const trials = flags.trials ?? space.trials ?? DEFAULT_TRIALS;
  const name = studyName(flags, space);
  const storage = await openTuneStore(flags.store);
  try {
    const study = await createStudy({ name, direction: space.direction, sampler: space.makeSampler(), pruner: space.makePruner(), store: storage, loadIfExists: true });
    // Every worker of a study must search the same space: the first one stores it.
    const info = await storage.getStudy(name);
    const stored = info?.userAttrs.space;
    if (stored === undefined) await study.setUserAttr('space', space.source);
    else if (stored !== space.source) throw new InputError(`study '${name}' was created with another search space; use another --study name, or the same file`);

    if (workers > 1 && !flags.workerProcess) {
      await runWorkerProcesses(flags, workers, name);
    } else {
      await runWorker(study, storage, space, flags, trials);
    }
    if (!flags.workerProcess) {
      await reportTestAccuracy(study, storage, space, flags);
      process.stdout.write(await describeStudy(study, storage, 5));
    }
  } finally {
    await storage.close();
  }
}

/** Starts `workers` copies of this command, each a one-trial-at-a-time worker with its share of the cores. */
async function runWorkerProcesses(flags: RunFlags, workers: number, name: string): Promise<void> {
  const threads = flags.threads ?? Math.max(1, Math.floor(availableParallelism() / workers));
  const args = ['tune', '--space', flags.space, '--study', name, '--workers', '1', '--threads', String(threads), '--heartbeat', String(flags.heartbeat ?? 10), '--worker-process'];
  for (const [flag, value] of [['--trials', flags.trials], ['--timeout', flags.timeout], ['--store', flags.store], ['--device', flags.device], ['--data-dir', flags.dataDir]] as const) {
    if (value !== undefined) args.push(flag, String(value));
  }
  const children: ChildProcess[] = [];
  const forward = (signal: NodeJS.Signals): void => children.forEach((c) => c.kill(signal));
  process.on('SIGINT', forward).on('SIGTERM', forward);
  try {
    const codes = await Promise.all(
      Array.from({ length: workers }, (_, i) => {
        const child = spawn(process.execPath, [...process.execArgv, process.argv[1] ?? '', ...args], { stdio: 'inherit', env: { ...process.env, TORCHLET_TUNE_WORKER: String(i) } });
        children.push(child);
        return new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      }),
    );
    const failed = codes.filter((c) => c !== 0).length;
    if (failed > 0) throw new Error(`${failed} of ${workers} workers exited with an error (see above)`);
  } finally {
    process.off('SIGINT', forward).off('SIGTERM', forward);
  }
}

/** Records each trial's training as a run, and links the trial to it. */
function trialSink(store: RunStore, storage: SqlTuneStorage, trialId: number): RunSink {
  return {
    async startRun(start: RunStart): Promise<OwnedRun> {
      const run = await store.startRun(start);
      await storage.setTrialRun(trialId, run.runId);
      await storage.setTrialAttr(trialId, 'user', 'run_id', run.runId);
      return run;
    },
  };
}

async function runWorker(study: Study, storage: SqlTuneStorage, space: TuneSpace, flags: RunFlags, trials: number): Promise<void> {
  const threads = flags.threads ?? Math.max(1, availableParallelism());
  setThreads(threads);
  const data = await loadMnist({
    ...((flags.dataDir ?? space.dataDir) !== undefined && { dataDir: flags.dataDir ?? space.dataDir }),
    ...(space.trainLimit !== undefined && { trainLimit: space.trainLimit }),
    testLimit: 1,
  });
  data.test.dispose();
  const size = data.train.size;
  if (space.valSplit >= size) throw new InputError(`valSplit ${space.valSplit} leaves no training images (the training set has ${size})`);
  const trainSet = data.train.slice(0, size - space.valSplit);
  const valSet = data.train.slice(size - space.valSplit, size);
  data.train.dispose();

  const controller = new AbortController();
  const running = new Set<number>();
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    controller.abort();
    process.stderr.write(`\ninterrupted: the running trial is marked failed and queued again; run the same command to resume study '${study.name}'\n`);
    void Promise.all([...running].map((id) => study.abandonTrial(id)))
      .catch(() => undefined)
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  const tag = process.env.TORCHLET_TUNE_WORKER !== undefined ? `[worker ${process.env.TORCHLET_TUNE_WORKER}] ` : '';
  process.stderr.write(`${tag}study '${study.name}' in ${storage.store.location}: up to ${trials} trials, ${threads} threads\n`);
  try {
    await study.optimize(
      async (trial) => {
        running.add(trial.id);
        try {
          return await runRecipeTrial(trial, {
            space,
            data: { train: trainSet, val: valSet },
            ...(flags.device !== undefined && { device: flags.device }),
            trainOptions: (t) => ({ store: trialSink(storage.store, storage, t.id), experiment: `tune:${study.name}`, runName: `${study.name}-trial-${t.number}` }),
          });
        } finally {
          running.delete(trial.id);
        }
      },
      {
        maxTrials: trials,
        ...(flags.timeout !== undefined && { timeout: flags.timeout }),
        heartbeatInterval: flags.heartbeat ?? 10,
        gracePeriod: 3 * (flags.heartbeat ?? 10),
        signal: controller.signal,
        catch: true,
        onTrialEnd: (t) => {
          process.stdout.write(`${tag}${formatTrial(t, space)}\n`);
        },
      },
    );
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    trainSet.dispose();
    valSet.dispose();
  }
}

function formatValue(v: number | null, space: TuneSpace): string {
  if (v === null) return '-';
  return space.objective === 'val_accuracy' ? `${(100 * v).toFixed(2)}%` : v.toFixed(4);
}

function formatParams(t: FrozenTrial): string {
  return Object.entries(t.params)
    .map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(4)) : String(v)}`)
    .join(' ');
}

function formatTrial(t: FrozenTrial, space: TuneSpace): string {
  const steps = [...t.intermediate.keys()];
  const at = t.state === 'pruned' && steps.length > 0 ? ` at epoch ${Math.max(...steps)}` : '';
  const why = t.state === 'failed' && typeof t.systemAttrs.fail_reason === 'string' ? ` (${t.systemAttrs.fail_reason})` : '';
  return `trial ${t.number} ${t.state}${at}${why}: ${space.objective} ${formatValue(t.value, space)} | ${formatParams(t)}`;
}

/** Scores the best trial's weights on the test set once, and stores the figure with the study. */
async function reportTestAccuracy(study: Study, storage: SqlTuneStorage, space: TuneSpace, flags: RunFlags): Promise<void> {
  const best = await study.bestTrial;
  if (!best) return;
  const info = await storage.getStudy(study.name);
  const done = info?.userAttrs.best_test;
  if (done !== null && typeof done === 'object' && !Array.isArray(done) && done.trial === best.number) return;
  const runId = (await storage.trialRuns(study.id)).get(best.number);
  const weights = runId !== undefined ? await storage.store.artifact(runId, 'best.pt') : undefined;
  if (!weights) return;
  const setup = recipeFrom(best.params as RecipeValues);
  const dir = mkdtempSync(join(tmpdir(), 'torchlet-tune-'));
  try {
    const path = join(dir, 'best.pt');
    writeFileSync(path, weights.data);
    const model = Model.fromFile(models[setup.model as ModelName], path, { device: flags.device ?? 'auto' });
    const data = await loadMnist({ ...((flags.dataDir ?? space.dataDir) !== undefined && { dataDir: flags.dataDir ?? space.dataDir }), trainLimit: 1 });
    try {
      const stats = await model.evaluate(data.test);
      await study.setUserAttr('best_test', { trial: best.number, run: runId ?? null, accuracy: stats.accuracy, loss: stats.loss });
    } finally {
      model.dispose();
      data.train.dispose();
      data.test.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function describeStudy(study: Study, storage: SqlTuneStorage, top: number): Promise<string> {
  const trials = await study.trials;
  const info = await storage.getStudy(study.name);
  const counts = new Map<string, number>();
  for (const t of trials) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
  const objective = typeof info?.userAttrs.space === 'string' && /objective:\s*val_loss/.test(info.userAttrs.space) ? 'val_loss' : 'val_accuracy';
  const fmt = (v: number | null): string => (v === null ? '-' : objective === 'val_accuracy' ? `${(100 * v).toFixed(2)}%` : v.toFixed(4));
  const runs = await storage.trialRuns(study.id);
  const lines = [
    `study '${study.name}' (${study.direction} ${objective}): ${trials.length} trials: ${[...counts].map(([s, n]) => `${n} ${s}`).join(', ')}`,
  ];
  const ranked = trials
    .filter((t) => t.state === 'complete' && t.value !== null)
    .sort((a, b) => (study.direction === 'maximize' ? (b.value ?? 0) - (a.value ?? 0) : (a.value ?? 0) - (b.value ?? 0)))
    .slice(0, top);
  for (const t of ranked) lines.push(`  #${t.number} ${fmt(t.value)}  ${formatParams(t)}${runs.has(t.number) ? `  run ${runs.get(t.number)?.slice(0, 8)}` : ''}`);
  const best = bestOf(trials, study.direction);
  const test = info?.userAttrs.best_test;
  if (best && test !== null && typeof test === 'object' && !Array.isArray(test) && test.trial === best.number && typeof test.accuracy === 'number') {
    lines.push(`best trial #${best.number}: test accuracy ${(100 * test.accuracy).toFixed(2)}% (measured once, after the search; never used to select)`);
  }
  return `${lines.join('\n')}\n`;
}
