// What keeping artifacts in the run store costs: each model's artifact sizes after a short
// recorded run, and the time to record one epoch (its metrics, the checkpoint and the best
// weights, in one transaction) on SQLite and, with TORCHLET_BENCH_PG=postgres://..., on
// PostgreSQL. Run: npx tsx bench/store-artifacts.ts
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist, Model, models, train, type ModelName } from '../src/index.js';
import { RunStore } from '../src/store/store.js';

const tmp = mkdtempSync(join(tmpdir(), 'torchlet-bench-store-'));
function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`missing ${what}`);
  return value;
}
const median = (xs: number[]): number => must([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)], 'a timing');

try {
  const sqlite = await RunStore.open(join(tmp, 'runs.db'));
  const data = await loadMnist({ trainLimit: 512, testLimit: 1000 });
  const rows: string[] = [];
  for (const name of Object.keys(models) as ModelName[]) {
    const model = new Model(models[name], { seed: 1 });
    const result = await train(model, data, { epochs: 1, store: sqlite, skipTrainEval: true });
    model.dispose();
    const sizes = new Map((await sqlite.artifacts(must(result.runId, 'the run id'))).map((a) => [a.name, a.size]));
    const kib = (artifact: string): string => (must(sizes.get(artifact), artifact) / 1024).toFixed(1);
    rows.push(`| ${name} | ${kib('best.pt')} | ${kib('checkpoint.ckpt')} | ${kib('curves.png')} |`);
  }
  data.train.dispose();
  data.test.dispose();
  console.log('| model | best.pt (KiB) | checkpoint.ckpt (KiB) | curves.png (KiB) |\n|---|---|---|---|\n' + rows.join('\n'));

  // One epoch's record: the metrics, the checkpoint and the best weights, as a worker writes them.
  const run = must((await sqlite.listRuns())[0], 'a run');
  const files = { checkpoint: join(tmp, 'c.ckpt'), best: join(tmp, 'b.pt') };
  writeFileSync(files.checkpoint, must(await sqlite.artifact(run.id, 'checkpoint.ckpt'), 'checkpoint').data);
  writeFileSync(files.best, must(await sqlite.artifact(run.id, 'best.pt'), 'best weights').data);
  const record = must((await sqlite.epochs(run.id))[0], 'an epoch');
  const stores: [string, RunStore][] = [['SQLite', sqlite]];
  if (process.env.TORCHLET_BENCH_PG) stores.push(['PostgreSQL', await RunStore.open(process.env.TORCHLET_BENCH_PG)]);
  for (const [label, store] of stores) {
    const target = await store.createRun({ config: {}, status: 'running' });
    const recorder = store.recorder(target.id);
    const times: number[] = [];
    for (let i = 0; i < 41; i++) {
      const t0 = performance.now();
      await recorder.epoch({ ...record, epoch: i + 1 }, files);
      times.push(performance.now() - t0);
    }
    console.log(`${label}: recording one epoch with its checkpoint and best weights: median ${median(times).toFixed(1)} ms over ${times.length}`);
    await store.close();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
