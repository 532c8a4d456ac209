// `npm run bench:tune` (also part of `npm run bench`): torchlet's TPE and random samplers
// against Debian's Optuna 3.1 TPE and random samplers on standard black-box functions,
// same machine, same run. For every function and sampler: the median and interquartile
// range over seeds of the best-so-far regret at trials 25, 50 and 100, and the sampler's
// own time per trial (the functions cost nothing). Issue 11's targets: torchlet's TPE
// median regret at 100 trials within Optuna TPE's interquartile range or better, below
// random search's median, and its time per trial at most Optuna's.
//
//   npm run bench:tune                 # 30 seeds x 100 trials, writes bench/tune-results.json and the README table
//   npm run bench:tune -- --quick      # 3 seeds x 30 trials (smoke test), bench/tune-results.quick.json, no README
//   npm run bench:tune -- --functions hartmann6,rosenbrock5   # rerun some; the others' rows stay
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createStudy, NopPruner, RandomSampler, TPESampler, type Sampler } from '../src/tune/index.js';
import { FUNCTIONS, type BenchFunction } from './tune-functions.js';
import { benchArgs } from './runner.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const START = '<!-- bench-tune:start -->';
const END = '<!-- bench-tune:end -->';
const run = promisify(execFile);

interface Options {
  quick: boolean;
  seeds: number;
  trials: number;
  checkpoints: number[];
  functions: BenchFunction[];
  /** Only some functions were asked for: the others' rows are kept from the results file. */
  subset: boolean;
  out: string;
  readme: string | undefined;
  python: string;
}

function parseOptions(argv: string[]): Options {
  const { values, quick, out, readme } = benchArgs(
    argv,
    { seeds: { type: 'string' }, trials: { type: 'string' }, functions: { type: 'string' }, python: { type: 'string' } },
    'tune-results',
  );
  const int = (name: string, v: string | undefined, fallback: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`--${name} must be a positive integer, got '${v}'`);
    return n;
  };
  const trials = int('trials', values.trials, quick ? 30 : 100);
  const names = values.functions?.split(',') ?? FUNCTIONS.map((f) => f.name);
  const functions = names.map((n) => {
    const f = FUNCTIONS.find((x) => x.name === n);
    if (!f) throw new RangeError(`unknown function '${n}' (known: ${FUNCTIONS.map((x) => x.name).join(', ')})`);
    return f;
  });
  return {
    quick,
    seeds: int('seeds', values.seeds, quick ? 3 : 30),
    trials,
    checkpoints: [25, 50, 100].filter((c) => c <= trials).concat(trials < 25 || ![25, 50, 100].includes(trials) ? [trials] : []),
    functions,
    subset: values.functions !== undefined,
    out,
    readme,
    python: values.python ?? '/usr/bin/python3',
  };
}

interface SeedRun {
  seed: number;
  curve: number[];
  seconds: number;
}

async function torchlet(f: BenchFunction, make: (seed: number) => Sampler, seeds: number, trials: number): Promise<SeedRun[]> {
  const out: SeedRun[] = [];
  for (let seed = 0; seed < seeds; seed++) {
    const study = await createStudy({ sampler: make(seed), pruner: new NopPruner() });
    const t0 = performance.now();
    await study.optimize(f.objective, { trials });
    const seconds = (performance.now() - t0) / 1000;
    let best = Infinity;
    out.push({ seed, curve: (await study.trials).map((t) => (best = Math.min(best, t.value ?? Infinity))), seconds });
  }
  return out;
}

async function optuna(o: Options, f: BenchFunction, sampler: 'tpe' | 'random'): Promise<SeedRun[]> {
  const { stdout } = await run(o.python, [join(ROOT, 'bench', 'tune_peer.py'), '--function', f.name, '--sampler', sampler, '--seeds', `0-${o.seeds - 1}`, '--trials', String(o.trials)], {
    maxBuffer: 64 << 20,
  });
  return JSON.parse(stdout) as SeedRun[];
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const pos = q * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return (s[lo] ?? NaN) + ((s[hi] ?? NaN) - (s[lo] ?? NaN)) * (pos - lo);
}

interface Summary {
  sampler: string;
  regret: Record<number, { median: number; q1: number; q3: number }>;
  msPerTrial: number;
}

function summarise(name: string, runs: SeedRun[], f: BenchFunction, checkpoints: number[], trials: number): Summary {
  const regret: Summary['regret'] = {};
  for (const c of checkpoints) {
    const vals = runs.map((r) => (r.curve[c - 1] ?? NaN) - f.optimum);
    regret[c] = { median: quantile(vals, 0.5), q1: quantile(vals, 0.25), q3: quantile(vals, 0.75) };
  }
  const ms = runs.map((r) => (1000 * r.seconds) / trials);
  return { sampler: name, regret, msPerTrial: quantile(ms, 0.5) };
}

const fmt = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 0.01 || x === 0 ? x.toPrecision(3) : x.toExponential(2));

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const load = loadavg()[0] ?? 0;
  const results: Result[] = [];
  for (const f of o.functions) {
    process.stderr.write(`${f.name}: `);
    // The two sides alternate so that load changes on the machine hit both.
    const tlTpe = await torchlet(f, (seed) => new TPESampler({ seed }), o.seeds, o.trials);
    process.stderr.write('torchlet TPE, ');
    const opTpe = await optuna(o, f, 'tpe');
    process.stderr.write('Optuna TPE, ');
    const tlRnd = await torchlet(f, (seed) => new RandomSampler({ seed }), o.seeds, o.trials);
    process.stderr.write('torchlet random, ');
    const opRnd = await optuna(o, f, 'random');
    process.stderr.write('Optuna random\n');
    const samplers = [
      summarise('torchlet TPE', tlTpe, f, o.checkpoints, o.trials),
      summarise('Optuna TPE', opTpe, f, o.checkpoints, o.trials),
      summarise('torchlet random', tlRnd, f, o.checkpoints, o.trials),
      summarise('Optuna random', opRnd, f, o.checkpoints, o.trials),
    ];
    const last = o.trials;
    const [t, op, tr, orr] = samplers.map((s) => s.regret[last] ?? { median: NaN, q1: NaN, q3: NaN });
    const targets = {
      withinOptunaIqrOrBetter: (t?.median ?? NaN) <= (op?.q3 ?? NaN),
      beatsRandom: (t?.median ?? NaN) < Math.min(tr?.median ?? NaN, orr?.median ?? NaN),
      notSlowerThanOptuna: (samplers[0]?.msPerTrial ?? NaN) <= (samplers[1]?.msPerTrial ?? NaN),
    };
    results.push({ function: f.name, description: f.description, samplers, targets, date: new Date().toISOString(), loadavg1: load });
  }
  const doc: Doc = { date: new Date().toISOString(), loadavg1: load, seeds: o.seeds, trials: o.trials, checkpoints: o.checkpoints, results: o.subset ? keepOthers(o, results) : results };
  writeFileSync(`${o.out}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${o.out}.tmp`, o.out);
  const table = markdown(doc);
  process.stdout.write(`${table}\nresults: ${o.out}\n`);
  if (o.readme !== undefined) writeReadme(o.readme, table);
}

interface Result {
  function: string;
  description: string;
  samplers: Summary[];
  targets: Record<string, boolean>;
  /** When this function's rows were measured, and the load then. */
  date?: string;
  loadavg1?: number;
}

interface Doc {
  date: string;
  loadavg1: number;
  seeds: number;
  trials: number;
  checkpoints: number[];
  results: Result[];
}

/**
 * A rerun of some functions replaces their rows in the results file and keeps the rest,
 * in the file's order; only a file measured with the same seeds and trials can be merged.
 */
function keepOthers(o: Options, fresh: Result[]): Result[] {
  let old: Doc;
  try {
    old = JSON.parse(readFileSync(o.out, 'utf8')) as Doc;
  } catch {
    return fresh;
  }
  if (old.seeds !== o.seeds || old.trials !== o.trials) {
    throw new RangeError(`${o.out} holds ${old.seeds} seeds x ${old.trials} trials; rerun all functions, or give --seeds ${old.seeds} --trials ${old.trials}`);
  }
  const merged = old.results.map((r) => fresh.find((f) => f.function === r.function) ?? { date: old.date, loadavg1: old.loadavg1, ...r });
  return [...merged, ...fresh.filter((f) => !merged.includes(f))];
}

function markdown(doc: Doc): string {
  const head = `| function | sampler | ${doc.checkpoints.map((c) => `regret @${c}: median [IQR]`).join(' | ')} | ms / trial |`;
  const sep = `|---|---|${doc.checkpoints.map(() => '---:').join('|')}|---:|`;
  const rows: string[] = [];
  for (const r of doc.results) {
    for (const s of r.samplers) {
      const cells = doc.checkpoints.map((c) => {
        const g = s.regret[c];
        return g ? `${fmt(g.median)} [${fmt(g.q1)}, ${fmt(g.q3)}]` : '-';
      });
      rows.push(`| ${r.function} | ${s.sampler} | ${cells.join(' | ')} | ${s.msPerTrial.toFixed(2)} |`);
    }
  }
  const checks = doc.results.map(
    (r) =>
      `- ${r.function}: TPE within Optuna's IQR or better: ${r.targets.withinOptunaIqrOrBetter ? 'yes' : '**no**'}; beats random: ${r.targets.beatsRandom ? 'yes' : '**no**'}; time per trial at most Optuna's: ${r.targets.notSlowerThanOptuna ? 'yes' : '**no**'}`,
  );
  return [
    `${doc.seeds} seeds x ${doc.trials} trials per function and sampler, on a 2-core machine shared with other jobs (compare times within a function only); measured: ` +
      `${doc.results.map((r) => `${r.function} ${(r.date ?? doc.date).slice(0, 10)} (load ${(r.loadavg1 ?? doc.loadavg1).toFixed(1)})`).join(', ')}.`,
    '',
    head,
    sep,
    ...rows,
    '',
    ...checks,
  ].join('\n');
}

function writeReadme(path: string, table: string): void {
  const text = readFileSync(path, 'utf8');
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start < 0 || end < start) {
    process.stderr.write(`warning: ${path} has no ${START} ... ${END} markers; the table was not written\n`);
    return;
  }
  writeFileSync(path, `${text.slice(0, start + START.length)}\n${table}\n${text.slice(end)}`);
}

await main();
