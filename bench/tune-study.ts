// `npm run bench:tune-study`: real tuning, issue 11's second and third measures. The same
// study of SuperLight's recipe (examples/tune-super-light.yaml: 24 trials of 5 epochs, a
// 10,000-image validation split, TPE with the constant liar) run four ways through the real
// `torchlet tune` command, one after another on this machine:
//   1. one worker, no pruner;
//   2. one worker, the file's median pruner: the wall time pruning saves against 1;
//   3. `--workers 2` (one SQLite store, one libtorch thread per worker);
//   4. two separate `torchlet tune` processes joining one study in PostgreSQL, as two
//      machines would (here on one machine, one thread each).
// For each: wall time, trials per hour, epochs trained per hour (the throughput that does
// not depend on how many trials were pruned), the best validation accuracy, and the best
// trial's test accuracy (measured once, after the search, by the command itself).
//
//   npm run bench:tune-study                  # the full study, writes bench/tune-study-results.json and the README table
//   npm run bench:tune-study -- --quick       # 4 trials of 2 epochs on 3,000 images (smoke test), no README
//   npm run bench:tune-study -- --only pg2    # some setups; the others' rows stay
//
// PostgreSQL: TORCHLET_TEST_PG (a URL whose user may create databases), else a private
// cluster started with Debian's initdb, as the tests do. Without either, setup 4 is left
// out with a note (under CI=true that is an error).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { openStore } from '../src/store/index.js';
import { SqlTuneStorage } from '../src/tune/sql-storage.js';
import { loadStudy } from '../src/tune/study.js';
import { freshDatabase, postgresAvailable, POSTGRES_PACKAGE } from '../tests/helpers/postgres.js';
import { benchArgs, ROOT, torchletCli, updateReadme } from './runner.js';

const START = '<!-- bench-tune-study:start -->';
const END = '<!-- bench-tune-study:end -->';
const SPACE = join(ROOT, 'examples', 'tune-super-light.yaml');

interface Setup {
  key: string;
  label: string;
  pruner: boolean;
  /** `--workers K` of one command. */
  workers: number;
  /** Separate commands joining one study in PostgreSQL. */
  processes: number;
}

const SETUPS: Setup[] = [
  { key: 'serial', label: '1 worker, no pruner', pruner: false, workers: 1, processes: 1 },
  { key: 'pruned', label: '1 worker, median pruner', pruner: true, workers: 1, processes: 1 },
  { key: 'workers2', label: '`--workers 2`, SQLite, median pruner', pruner: true, workers: 2, processes: 1 },
  { key: 'pg2', label: '2 processes sharing PostgreSQL, median pruner', pruner: true, workers: 1, processes: 2 },
];

interface Options {
  quick: boolean;
  trials: number;
  setups: Setup[];
  out: string;
  readme: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values, quick, out, readme } = benchArgs(argv, { trials: { type: 'string' }, only: { type: 'string' } }, 'tune-study-results');
  const trials = values.trials === undefined ? (quick ? 4 : 24) : Number(values.trials);
  if (!Number.isInteger(trials) || trials <= 0) throw new RangeError(`--trials must be a positive integer, got '${values.trials}'`);
  const keys = values.only?.split(',') ?? SETUPS.map((s) => s.key);
  const setups = keys.map((k) => {
    const s = SETUPS.find((x) => x.key === k);
    if (!s) throw new RangeError(`unknown setup '${k}' in --only (known: ${SETUPS.map((x) => x.key).join(', ')})`);
    return s;
  });
  return {
    quick,
    trials,
    setups,
    out,
    readme,
  };
}

interface Row {
  key: string;
  label: string;
  trials: number;
  seconds: number;
  complete: number;
  pruned: number;
  failed: number;
  epochs: number;
  trialsPerHour: number;
  epochsPerHour: number;
  bestVal: number | null;
  bestTest: number | null;
  load: number;
}

/** The example's space, with the pruner off for setup 1, and small data for --quick. */
function spaceFile(dir: string, setup: Setup, quick: boolean): string {
  const space = parse(readFileSync(SPACE, 'utf8')) as Record<string, unknown>;
  if (!setup.pruner) space.pruner = { type: 'none' };
  if (quick) {
    space.trainLimit = 3000;
    space.valSplit = 1000;
    space.fixed = { ...(space.fixed as Record<string, unknown>), epochs: 2 };
    space.pruner = setup.pruner ? { type: 'median', nStartupTrials: 1, nWarmupSteps: 0 } : { type: 'none' };
  }
  const path = join(dir, `${setup.key}.yaml`);
  writeFileSync(path, stringify(space));
  return path;
}

function tune(args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, torchletCli(ROOT, 'tune', ...args), { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', fail);
    child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`torchlet tune ${args.join(' ')} exited with ${code}`))));
  });
}

async function measure(setup: Setup, o: Options, dir: string): Promise<Row> {
  const space = spaceFile(dir, setup, o.quick);
  const study = `bench-${setup.key}`;
  const db = setup.processes > 1 ? await freshDatabase() : undefined;
  const store = db?.url ?? join(dir, `${setup.key}.db`);
  const load = loadavg()[0] ?? 0;
  try {
    const common = ['--space', space, '--study', study, '--trials', String(o.trials), '--store', store];
    const t0 = performance.now();
    if (setup.processes > 1) {
      // Each process gets its share of the cores, as --workers gives each of its workers.
      const threads = String(Math.max(1, Math.floor(availableParallelism() / setup.processes)));
      await Promise.all(Array.from({ length: setup.processes }, () => tune([...common, '--threads', threads])));
    } else {
      await tune([...common, '--workers', String(setup.workers)]);
    }
    const seconds = (performance.now() - t0) / 1000;
    const storage = new SqlTuneStorage(await openStore(store));
    try {
      const s = await loadStudy({ name: study, store: storage });
      const trials = await s.trials;
      const count = (state: string): number => trials.filter((t) => t.state === state).length;
      const best = await s.bestTrial;
      const test = (await storage.getStudy(study))?.userAttrs.best_test;
      const bestTest = test !== null && typeof test === 'object' && !Array.isArray(test) && typeof test.accuracy === 'number' ? test.accuracy : null;
      const epochs = trials.reduce((n, t) => n + t.intermediate.size, 0);
      const finished = count('complete') + count('pruned');
      return {
        key: setup.key,
        label: setup.label,
        trials: trials.length,
        seconds,
        complete: count('complete'),
        pruned: count('pruned'),
        failed: count('failed'),
        epochs,
        trialsPerHour: (3600 * finished) / seconds,
        epochsPerHour: (3600 * epochs) / seconds,
        bestVal: best?.value ?? null,
        bestTest,
        load,
      };
    } finally {
      await storage.close();
    }
  } finally {
    await db?.drop();
  }
}

const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(2)}%`);

function table(rows: Row[], o: { trials: number; date: string }): string {
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const serial = byKey.get('serial');
  const pruned = byKey.get('pruned');
  const lines = [
    `${o.trials} trials per study, 5 epochs each at most (${o.date}; \`npm run bench:tune-study\`; load average at each start in the last column).`,
    '',
    '| setup | wall time | trials: complete / pruned / failed | epochs trained | trials / hour | epochs / hour | vs 1 worker (epochs / hour) | best val accuracy | its test accuracy | load |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const vs = pruned && r.key !== 'serial' ? `${(r.epochsPerHour / pruned.epochsPerHour).toFixed(2)}x` : '-';
    lines.push(
      `| ${r.label} | ${(r.seconds / 60).toFixed(1)} min | ${r.complete} / ${r.pruned} / ${r.failed} | ${r.epochs} | ${r.trialsPerHour.toFixed(0)} | ${r.epochsPerHour.toFixed(0)} | ${vs} | ${pct(r.bestVal)} | ${pct(r.bestTest)} | ${r.load.toFixed(1)} |`,
    );
  }
  lines.push('');
  if (serial && pruned) {
    lines.push(
      `- Pruning: ${pruned.pruned} of ${pruned.trials} trials stopped early; wall time ${(serial.seconds / 60).toFixed(1)} → ${(pruned.seconds / 60).toFixed(1)} min ` +
        `(${(100 * (1 - pruned.seconds / serial.seconds)).toFixed(0)}% saved); best validation accuracy ${pct(serial.bestVal)} without, ${pct(pruned.bestVal)} with.`,
    );
  }
  for (const key of ['workers2', 'pg2']) {
    const r = byKey.get(key);
    if (r && pruned) {
      lines.push(`- ${r.label}: ${(r.trialsPerHour / pruned.trialsPerHour).toFixed(2)}x the trials per hour of one worker, ${(r.epochsPerHour / pruned.epochsPerHour).toFixed(2)}x its epochs per hour.`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.setups.some((s) => s.processes > 1) && !postgresAvailable) {
    const msg = `setup pg2 needs ${POSTGRES_PACKAGE}`;
    if (process.env.CI === 'true') throw new Error(msg);
    process.stderr.write(`${msg}: left out\n`);
    o.setups = o.setups.filter((s) => s.processes === 1);
  }
  // Rows of setups not run this time stay from the results file.
  const old = !o.quick && existsSync(o.out) ? (JSON.parse(readFileSync(o.out, 'utf8')) as { rows: Row[]; trials: number }) : undefined;
  if (old && old.trials !== o.trials && o.setups.length < SETUPS.length) throw new RangeError(`${o.out} holds ${old.trials}-trial studies; rerun every setup, or give --trials ${old.trials}`);
  const dir = mkdtempSync(join(tmpdir(), 'torchlet-tune-study-'));
  const rows: Row[] = [];
  try {
    for (const setup of o.setups) {
      process.stderr.write(`\n== ${setup.label} ==\n`);
      rows.push(await measure(setup, o, dir));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const merged = SETUPS.map((s) => rows.find((r) => r.key === s.key) ?? old?.rows.find((r) => r.key === s.key)).filter((r): r is Row => r !== undefined);
  const date = new Date().toISOString().slice(0, 10);
  const doc = { date, trials: o.trials, quick: o.quick, rows: merged };
  writeFileSync(`${o.out}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${o.out}.tmp`, o.out);
  const md = table(merged, { trials: o.trials, date });
  process.stdout.write(`\n${md}\n`);
  if (o.readme) updateReadme(o.readme, md, START, END);
  for (const r of rows) {
    if (r.failed > 0 || r.complete === 0) throw new Error(`${r.label}: ${r.failed} failed and ${r.complete} complete trials`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
