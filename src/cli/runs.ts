// `torchlet runs`: list, show, compare, export, delete and garbage-collect recorded runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { compareCurvesPng } from '../plot.js';
import { RUN_STATUSES } from '../store/schema.js';
import type { Run, RunStatus, RunStore } from '../store/store.js';
import type { EpochRecord } from '../train.js';
import { InputError, message } from './common.js';

const storeOption = (): Option => new Option('--store <url>', 'run store: an SQLite file or postgres://... (default: TORCHLET_STORE or ./torchlet-runs/runs.db)');

async function withStore<T>(location: string | undefined, fn: (store: RunStore) => Promise<T>): Promise<T> {
  // Loaded here, not at the top: the SQL drivers cost every other command its start-up time.
  const { openStore, RunNotFoundError } = await import('../store/index.js');
  const store = await openStore(location).catch((err: unknown) => Promise.reject(new InputError(message(err))));
  try {
    return await fn(store);
  } catch (err) {
    throw err instanceof RunNotFoundError ? new InputError(err.message) : err;
  } finally {
    await store.close();
  }
}

const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(100 * x).toFixed(2)}%`);

/** Seconds from start to end (or to now while running). */
export function duration(run: Run): number | undefined {
  if (run.startedAt === null) return undefined;
  const end = run.endedAt === null ? Date.now() : Date.parse(run.endedAt);
  return (end - Date.parse(run.startedAt)) / 1000;
}

const formatDuration = (s: number | undefined): string => (s === undefined ? '-' : s < 120 ? `${s.toFixed(0)}s` : `${(s / 60).toFixed(1)}m`);

/** The value `--sort METRIC` orders by: a field of the final epoch record, or best, duration, created, name. */
function sortKey(run: Run, metric: string): number | string | undefined {
  if (metric === 'best') return run.best?.accuracy;
  if (metric === 'duration') return duration(run);
  if (metric === 'created') return run.createdAt;
  if (metric === 'name') return run.name;
  const value = (run.final as Record<string, unknown> | null)?.[metric];
  return typeof value === 'number' ? value : undefined;
}

const SORTABLE = ['best', 'duration', 'created', 'name', 'epoch', 'trainLoss', 'trainAccuracy', 'testLoss', 'testAccuracy', 'valLoss', 'valAccuracy', 'stepLoss', 'stepAccuracy', 'lr', 'seconds'];

export function sortRuns(runs: Run[], spec: string): Run[] {
  const [metric = '', dir] = spec.split(':');
  if (!SORTABLE.includes(metric)) throw new InputError(`--sort: unknown metric '${metric}' (choose one of ${SORTABLE.join(', ')}, optionally with :asc or :desc)`);
  if (dir !== undefined && dir !== 'asc' && dir !== 'desc') throw new InputError(`--sort: direction must be asc or desc, got '${dir}'`);
  // Accuracies and the newest first by default; losses, times and names smallest first.
  const descending = dir === undefined ? /accuracy|best|created|epoch/i.test(metric) : dir === 'desc';
  return [...runs].sort((a, b) => {
    const x = sortKey(a, metric);
    const y = sortKey(b, metric);
    if (x === undefined || y === undefined) return x === y ? 0 : x === undefined ? 1 : -1; // runs without the metric last
    const order = x < y ? -1 : x > y ? 1 : 0;
    return descending ? -order : order;
  });
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, c) => (widths[c] = Math.max(widths[c] ?? 0, cell.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ').trimEnd()).join('\n');
}

function epochsOf(run: Run): string {
  const total = run.config.epochs;
  return `${run.final?.epoch ?? 0}/${typeof total === 'number' ? total : '?'}`;
}

export function registerRuns(program: Command): void {
  const runs = program.command('runs').description('list, show, compare, export, delete and garbage-collect recorded training runs');

  runs
    .command('list')
    .description('list runs, newest first')
    .option('--experiment <name>', 'only this experiment')
    .addOption(new Option('--status <status>', 'only runs with this status').choices(RUN_STATUSES))
    .option('--sort <metric>', `order by a metric (${SORTABLE.join(', ')}), optionally :asc or :desc`)
    .option('--json', 'print the runs as JSON')
    .addOption(storeOption())
    .action(async (flags: { experiment?: string; status?: RunStatus; sort?: string; json?: boolean; store?: string }) => {
      await withStore(flags.store, async (store) => {
        let list = await store.listRuns({ ...(flags.experiment !== undefined && { experiment: flags.experiment }), ...(flags.status !== undefined && { status: flags.status }) });
        if (flags.sort !== undefined) list = sortRuns(list, flags.sort);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
          return;
        }
        if (list.length === 0) {
          process.stdout.write(`no runs in ${store.location}\n`);
          return;
        }
        const rows = [['ID', 'NAME', 'EXPERIMENT', 'STATUS', 'MODEL', 'EPOCHS', 'BEST', 'TEST ACC', 'DURATION', 'CREATED']];
        for (const r of list) {
          rows.push([
            r.id.slice(0, 8),
            r.name,
            r.experiment,
            r.status,
            String(r.config.model ?? r.params.model ?? '-'),
            epochsOf(r),
            pct(r.best?.accuracy),
            pct(r.final?.testAccuracy),
            formatDuration(duration(r)),
            r.createdAt.replace('T', ' ').slice(0, 19),
          ]);
        }
        process.stdout.write(`${table(rows)}\n`);
      });
    });

  runs
    .command('show')
    .description("a run's config, environment, metrics per epoch and artifacts")
    .argument('<id>', 'run id or a unique prefix of it')
    .option('--json', 'print the run, its epochs and its artifacts as JSON')
    .addOption(storeOption())
    .action(async (id: string, flags: { json?: boolean; store?: string }) => {
      await withStore(flags.store, async (store) => {
        const run = await store.getRun(id);
        const epochs = await store.epochs(run.id);
        const artifacts = await store.artifacts(run.id);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ run, epochs, artifacts }, null, 2)}\n`);
          return;
        }
        const lines = [
          `run ${run.id}  ${run.name}  (experiment ${run.experiment})`,
          `status      ${run.status}${run.deleted ? ' (deleted)' : ''}${run.error ? `: ${run.error}` : ''}`,
          `created     ${run.createdAt}`,
          `started     ${run.startedAt ?? '-'}`,
          `ended       ${run.endedAt ?? '-'}  (${formatDuration(duration(run))})`,
          `git         ${run.git.commit ?? '-'}${run.git.dirty ? ' (dirty)' : ''}`,
          `versions    torchlet ${run.versions.torchlet ?? '-'}, libtorch ${run.versions.libtorch ?? '-'}`,
          `machine     ${run.host ?? '-'}, ${run.device ?? '-'}, ${run.threads ?? '-'} threads${run.worker ? `, worker ${run.worker}` : ''}, attempt ${run.attempts}`,
          `config      ${JSON.stringify(run.config)}`,
          `best        ${run.best ? `${pct(run.best.accuracy)} ${run.best.by} accuracy at epoch ${run.best.epoch}` : '-'}`,
          '',
        ];
        if (epochs.length > 0) {
          const rows = [['EPOCH', 'TRAIN LOSS', 'TRAIN ACC', 'TEST LOSS', 'TEST ACC', 'VAL ACC', 'LR', 'SECONDS']];
          for (const e of epochs) {
            rows.push([String(e.epoch), e.trainLoss.toFixed(4), pct(e.trainAccuracy), e.testLoss.toFixed(4), pct(e.testAccuracy), pct(e.valAccuracy), e.lr.toExponential(3), e.seconds.toFixed(1)]);
          }
          lines.push(table(rows), '');
        }
        lines.push(artifacts.length === 0 ? 'no artifacts' : `artifacts:\n${artifacts.map((a) => `  ${a.name.padEnd(16)} ${String(a.size).padStart(9)} bytes  sha256 ${a.sha256}`).join('\n')}`);
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });

  runs
    .command('compare')
    .description('compare runs: a params diff, a metrics table, and their curves overlaid in a PNG')
    .argument('<ids...>', 'two to ten run ids (or unique prefixes)')
    .option('--out <file>', 'where the overlaid curves go', 'runs-compare.png')
    .option('--json', 'print the comparison as JSON')
    .addOption(storeOption())
    .action(async (ids: string[], flags: { out: string; json?: boolean; store?: string }) => {
      if (ids.length < 2 || ids.length > 10) throw new InputError(`compare takes 2 to 10 runs, got ${ids.length}`);
      await withStore(flags.store, async (store) => {
        const list = await Promise.all(ids.map((id) => store.getRun(id)));
        const epochs = await Promise.all(list.map((r) => store.epochs(r.id)));
        const comparison = compareRuns(list, epochs);
        const labels = list.map((r) => `${r.name} (${r.id.slice(0, 8)})`);
        writeFileSync(flags.out, await compareCurvesPng(list.map((_, i) => ({ label: labels[i] ?? '', records: epochs[i] ?? [] })), `${list.length} runs`));
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ ...comparison, png: flags.out }, null, 2)}\n`);
          return;
        }
        const short = list.map((r) => r.id.slice(0, 8));
        const diff = [['PARAM', ...short], ...comparison.paramsDiff.map((d) => [d.param, ...d.values.map((v) => (v === undefined ? '-' : JSON.stringify(v)))])];
        const metrics = [['METRIC', ...short], ...comparison.metrics.map((m) => [m.metric, ...m.values.map((v) => (v === undefined ? '-' : m.metric.includes('ccuracy') ? pct(v) : Number.isInteger(v) ? String(v) : v.toFixed(4)))])];
        process.stdout.write(
          `${comparison.paramsDiff.length === 0 ? 'params: all the same' : `params that differ:\n${table(diff)}`}\n\n${table(metrics)}\n\ncurves: ${flags.out}\n`,
        );
      });
    });

  runs
    .command('export')
    .description("write a run (run.json with its epochs) and its artifacts into a folder")
    .argument('<id>', 'run id or a unique prefix of it')
    .requiredOption('--out <dir>', 'the folder to write into')
    .addOption(storeOption())
    .action(async (id: string, flags: { out: string; store?: string }) => {
      await withStore(flags.store, async (store) => {
        const run = await store.getRun(id);
        mkdirSync(flags.out, { recursive: true });
        const artifacts = await store.artifacts(run.id);
        writeFileSync(join(flags.out, 'run.json'), `${JSON.stringify({ run, epochs: await store.epochs(run.id), artifacts }, null, 2)}\n`);
        for (const info of artifacts) {
          const artifact = await store.artifact(run.id, info.name);
          if (artifact !== undefined) writeFileSync(join(flags.out, info.name), artifact.data);
        }
        process.stdout.write(`wrote run.json and ${artifacts.length} artifacts to ${flags.out}\n`);
      });
    });

  runs
    .command('delete')
    .description('delete runs (cancelling any still queued or running); `runs gc` removes them for good')
    .argument('<ids...>', 'run ids (or unique prefixes)')
    .addOption(storeOption())
    .action(async (ids: string[], flags: { store?: string }) => {
      await withStore(flags.store, async (store) => {
        for (const id of ids) {
          const run = await store.getRun(id);
          await store.deleteRun(run.id);
          process.stdout.write(`deleted ${run.id} (${run.name})\n`);
        }
      });
    });

  runs
    .command('gc')
    .description('remove deleted runs for good, with their epochs and artifacts')
    .addOption(storeOption())
    .action(async (flags: { store?: string }) => {
      await withStore(flags.store, async (store) => {
        const freed = await store.gc();
        process.stdout.write(`removed ${freed.runs} deleted runs and ${freed.artifacts} artifacts (${freed.bytes} bytes)\n`);
      });
    });
}

export interface Comparison {
  runs: { id: string; name: string; status: string }[];
  /** The config entries whose values are not the same in every run. */
  paramsDiff: { param: string; values: unknown[] }[];
  metrics: { metric: string; values: (number | undefined)[] }[];
}

export function compareRuns(runs: Run[], epochs: EpochRecord[][]): Comparison {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))].sort();
  const paramsDiff = keys
    .map((param) => ({ param, values: runs.map((r) => r.config[param]) }))
    .filter((d) => new Set(d.values.map((v) => JSON.stringify(v))).size > 1);
  const final = (field: keyof EpochRecord) => runs.map((r) => (typeof r.final?.[field] === 'number' ? (r.final[field] as number) : undefined));
  const metrics = [
    { metric: 'best accuracy', values: runs.map((r) => r.best?.accuracy) },
    { metric: 'best epoch', values: runs.map((r) => r.best?.epoch) },
    { metric: 'epochs', values: epochs.map((e) => e.length) },
    { metric: 'final testAccuracy', values: final('testAccuracy') },
    { metric: 'final testLoss', values: final('testLoss') },
    { metric: 'final trainAccuracy', values: final('trainAccuracy') },
    { metric: 'final trainLoss', values: final('trainLoss') },
    { metric: 'duration (s)', values: runs.map((r) => duration(r)) },
  ];
  return { runs: runs.map((r) => ({ id: r.id, name: r.name, status: r.status })), paramsDiff, metrics };
}
