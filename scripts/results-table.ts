// Prints the README's results tables from the runs in a folder of training logs:
//   npx tsx scripts/results-table.ts [folder]    (default training-logs; the runs behind
//                                                 the released weights: training-logs/released)
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { seedSpread } from '../src/metrics.js';
import { parseRunLog } from '../src/training-log.js';

interface Run {
  model: string;
  aug: boolean;
  seed: number;
  file: string;
  test: number[];
  seconds: number;
}

const REFERENCE: Record<string, { aug: number; noaug: number }> = {
  light: { aug: 99.27, noaug: 99.09 },
  lightest: { aug: 99.42, noaug: 99.3 },
  super_light: { aug: 99.44, noaug: 99.42 },
};

const dir = process.argv[2] ?? 'training-logs';
const runs: Run[] = [];
for (const file of readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()) {
  const text = readFileSync(join(dir, file), 'utf8');
  const header = JSON.parse(text.split('\n')[0] ?? '{}') as { model: string; aug: boolean; recipe: { seed: number; epochs: number } };
  const epochs = parseRunLog(text, file);
  if (epochs.length !== header.recipe.epochs) continue; // unfinished run
  runs.push({
    model: header.model,
    aug: header.aug,
    seed: header.recipe.seed,
    file,
    test: epochs.map((e) => 100 * e.testAccuracy),
    seconds: epochs.reduce((s, e) => s + e.seconds, 0),
  });
}

const f2 = (x: number): string => x.toFixed(2);
console.log('| model | aug | seed | final test acc | best test acc (epoch) | reference final | log |');
console.log('|---|---|---|---|---|---|---|');
for (const r of runs) {
  const best = Math.max(...r.test);
  const ref = REFERENCE[r.model]?.[r.aug ? 'aug' : 'noaug'];
  console.log(
    `| ${r.model} | ${r.aug ? 'yes' : 'no'} | ${r.seed} | ${f2(r.test.at(-1) ?? 0)}% | ${f2(best)}% (${r.test.indexOf(best) + 1}) | ${ref === undefined ? '-' : `${f2(ref)}%`} | [log](${dir}/${r.file.replace(/\.jsonl$/, '.log')}) |`,
  );
}

console.log('\nPer-epoch test accuracy (%):\n');
const width = Math.max(...runs.map((r) => r.test.length));
console.log(`| run | ${Array.from({ length: width }, (_, i) => i + 1).join(' | ')} |`);
console.log(`|---|${'---|'.repeat(width)}`);
for (const r of runs) console.log(`| ${r.model} ${r.aug ? 'aug' : 'noaug'} s${r.seed} | ${r.test.map(f2).join(' | ')} |`);

console.log('\nSeed spread:\n');
for (const key of new Set(runs.map((r) => `${r.model}/${r.aug}`))) {
  const group = runs.filter((r) => `${r.model}/${r.aug}` === key);
  if (group.length < 2) continue;
  const { mean, sd, min, max } = seedSpread(group.map((r) => r.test.at(-1) ?? 0));
  console.log(`- ${key.replace('/true', ' + aug').replace('/false', ' without aug')}: final ${f2(mean)}% ± ${f2(sd)} (sample sd, ${group.length} seeds: ${group.map((r) => r.seed).join(', ')}; min ${f2(min)}, max ${f2(max)})`);
}
