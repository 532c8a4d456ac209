// `tune export --optuna-journal`: Debian's Optuna 3.1 loads the file with load_study and
// sees every trial's params, distributions, values, intermediate values and state.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createStudy, RandomSampler, TrialPruned } from '../../src/tune/index.js';
import { optunaJournal } from '../../src/tune/journal.js';
import { missing } from '../helpers/requires.js';

const PYTHON = '/usr/bin/python3';
const hasOptuna = spawnSync(PYTHON, ['-c', 'import optuna'], { stdio: 'ignore' }).status === 0;

const LOAD = `
import json, math, sys
import optuna
from optuna.storages import JournalStorage, JournalFileStorage
storage = JournalStorage(JournalFileStorage(sys.argv[1]))
study = optuna.load_study(study_name=sys.argv[2], storage=storage)
num = lambda v: None if v is None else ('nan' if math.isnan(v) else v)
print(json.dumps({
  'direction': study.direction.name,
  'user_attrs': study.user_attrs,
  'trials': [{
    'number': t.number, 'state': t.state.name, 'value': num(t.value), 'params': t.params,
    'distributions': {k: optuna.distributions.distribution_to_json(d) for k, d in t.distributions.items()},
    'intermediate': {str(k): num(v) for k, v in sorted(t.intermediate_values.items())},
    'user_attrs': t.user_attrs,
  } for t in study.trials],
  'best': study.best_trial.number,
}))
`;

describe.skipIf(missing(hasOptuna, "Debian's python3-optuna"))('Optuna journal export', () => {
  it('round-trips through optuna.load_study', async () => {
    const study = await createStudy({ name: 'round-trip', direction: 'maximize', sampler: new RandomSampler({ seed: 5 }) });
    await study.setUserAttr('space', 'examples/tune-super-light.yaml');
    await study.enqueueTrial({ lr: 0.01 });
    await study.optimize(
      async (t) => {
        const lr = t.suggestFloat('lr', 1e-4, 1e-1, { log: true });
        const drop = t.suggestFloat('drop', 0, 0.5, { step: 0.1 });
        const batch = t.suggestInt('batch', 32, 256, { step: 32 });
        const width = t.suggestInt('width', 1, 64, { log: true });
        const model = t.suggestCategorical('model', ['super_light', 'lightest']);
        const aug = t.suggestCategorical('aug', [true, false]);
        t.setUserAttr('run_id', `run-${t.number}`);
        for (let step = 1; step <= 3; step++) {
          await t.report(t.number === 2 && step === 2 ? NaN : lr * step + drop, step);
        }
        if (t.number === 3) throw new TrialPruned();
        if (t.number === 4) throw new Error('diverged');
        return lr + drop + batch / 1000 + width / 100 + (model === 'lightest' ? 1 : 0) + (aug ? 0.5 : 0);
      },
      { trials: 6, catch: true },
    );
    await study.enqueueTrial({ lr: 0.02 });
    const dir = mkdtempSync(join(tmpdir(), 'torchlet-journal-'));
    const file = join(dir, 'study.log');
    const info = (await study.store.getStudy('round-trip'))!;
    const trials = await study.trials;
    writeFileSync(file, optunaJournal(info, trials));
    const loaded = JSON.parse(execFileSync(PYTHON, ['-c', LOAD, file, 'round-trip'], { encoding: 'utf8' })) as {
      direction: string;
      user_attrs: Record<string, unknown>;
      trials: { number: number; state: string; value: number | null; params: Record<string, unknown>; distributions: Record<string, string>; intermediate: Record<string, number | 'nan'>; user_attrs: Record<string, unknown> }[];
      best: number;
    };
    expect(loaded.direction).toBe('MAXIMIZE');
    expect(loaded.user_attrs).toEqual({ space: 'examples/tune-super-light.yaml' });
    expect(loaded.trials).toHaveLength(trials.length);
    const STATES = { complete: 'COMPLETE', pruned: 'PRUNED', failed: 'FAIL', running: 'RUNNING', waiting: 'WAITING' };
    for (const [i, t] of trials.entries()) {
      const o = loaded.trials[i]!;
      expect(o.number).toBe(t.number);
      expect(o.state).toBe(STATES[t.state]);
      expect(o.value).toBe(t.value);
      expect(o.params).toEqual(t.params);
      expect(o.user_attrs).toEqual(t.userAttrs);
      expect(Object.keys(o.distributions).sort()).toEqual(Object.keys(t.distributions).sort());
      for (const [name, d] of Object.entries(t.distributions)) {
        const od = JSON.parse(o.distributions[name]!) as { name: string; attributes: Record<string, unknown> };
        if (d.type === 'categorical') expect(od).toEqual({ name: 'CategoricalDistribution', attributes: { choices: d.choices } });
        else expect(od).toEqual({ name: d.type === 'int' ? 'IntDistribution' : 'FloatDistribution', attributes: { low: d.low, high: d.high, log: d.log, step: d.step } });
      }
      expect(o.intermediate).toEqual(Object.fromEntries([...t.intermediate].map(([s, v]) => [String(s), Number.isNaN(v) ? 'nan' : v])));
    }
    expect(trials.map((t) => t.state)).toEqual(['complete', 'complete', 'complete', 'pruned', 'failed', 'complete', 'waiting']);
    expect(loaded.trials[2]!.intermediate['2']).toBe('nan');
    expect(loaded.best).toBe((await study.bestTrial)!.number);
  });
});
