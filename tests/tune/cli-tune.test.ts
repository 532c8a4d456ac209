// `torchlet tune` end to end on a tiny budget: two worker processes share an SQLite run
// store, every trial is a recorded run, `tune show` and `tune export` read the study
// back; a bad search space fails before any trial, naming the field.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/store.js';
import { loadStudy, SqlTuneStorage } from '../../src/tune/index.js';
import { cli, expectInputError, expectNoCrash, MNIST_DIR } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'torchlet-tune-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('torchlet tune', () => {
  it('rejects a bad search space before opening the store, naming the field', async () => {
    const space = join(dir, 'bad.yaml');
    const store = join(dir, 'never.db');
    for (const [body, pattern] of [
      ['params:\n  lr: { low: 1, high: 0.1 }\n', /params\.lr.*low \(1\) must be <= high \(0\.1\)/],
      ['params:\n  momentum: { low: 0.8, high: 0.99 }\n', /params\.momentum: unknown parameter 'momentum'/],
    ] as const) {
      writeFileSync(space, body);
      expectInputError(await cli(['tune', '--space', space, '--store', store]), pattern);
    }
    expect(existsSync(store)).toBe(false);
  }, 600_000);

  it('runs a study with 2 workers, records every trial as a run, shows and exports it', async () => {
    const space = join(dir, 'tiny.yaml');
    const store = join(dir, 'runs.db');
    writeFileSync(
      space,
      [
        'study: tiny',
        'valSplit: 500',
        'trainLimit: 1500',
        'sampler: { type: tpe, seed: 1, nStartupTrials: 2 }',
        'pruner: { type: median, nStartupTrials: 2 }',
        'fixed: { model: super_light, epochs: 2, aug: false }',
        'params:',
        '  maxLr: { low: 0.000001, high: 0.05, log: true }',
        '  batchSize: { choices: [32, 64] }',
        '',
      ].join('\n'),
    );
    const r = await cli(['tune', '--space', space, '--store', store, '--trials', '4', '--workers', '2', '--data-dir', MNIST_DIR, '--heartbeat', '2']);
    expectNoCrash(r);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\[worker 0\] study 'tiny'.*1 threads/);
    expect(r.stderr).toMatch(/\[worker 1\] study 'tiny'/);
    expect(r.stdout).toMatch(/best trial #\d+: test accuracy \d+\.\d+% \(measured once/);

    const runStore = await openStore(store);
    const storage = new SqlTuneStorage(runStore);
    try {
      const study = await loadStudy({ name: 'tiny', store: storage });
      const trials = await study.trials;
      expect(trials).toHaveLength(4);
      const runs = await storage.trialRuns(study.id);
      for (const t of trials) {
        expect(['complete', 'pruned']).toContain(t.state);
        expect(Object.keys(t.params).sort()).toEqual(['batchSize', 'maxLr']);
        // The run holds exactly the epochs the trial reported: a pruned trial trained fewer.
        const runId = runs.get(t.number)!;
        const epochs = await runStore.epochs(runId);
        expect(epochs.map((e) => e.epoch)).toEqual([...t.intermediate.keys()]);
        expect(epochs.map((e) => e.testAccuracy)).toEqual([...t.intermediate.values()]);
        expect((await runStore.getRun(runId)).experiment).toBe('tune:tiny');
      }
      const info = await storage.getStudy('tiny');
      expect(info!.userAttrs.best_test).toMatchObject({ trial: (await study.bestTrial)!.number });
    } finally {
      await storage.close();
    }

    const show = await cli(['tune', 'show', 'tiny', '--store', store, '--top', '2']);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/study 'tiny' \(maximize val_accuracy\): 4 trials/);
    expect(show.stdout.split('\n').filter((l) => /^ {2}#\d+ /.test(l)).length).toBeLessThanOrEqual(2);

    const journal = join(dir, 'tiny.log');
    const exp = await cli(['tune', 'export', 'tiny', '--store', store, '--optuna-journal', journal]);
    expect(exp.code, exp.stderr).toBe(0);
    const ops = readFileSync(journal, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { op_code: number });
    expect(ops.filter((o) => o.op_code === 4)).toHaveLength(4);

    expectInputError(await cli(['tune', 'show', 'nope', '--store', store]), /no study named 'nope'/);
  }, 900_000);
});
