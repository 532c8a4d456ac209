// One worker process of a shared study, for the multi-process tune tests:
//   tsx tests/helpers/tune-worker.ts STORE STUDY MAX_TRIALS LOG_FILE
// Runs trials of a cheap objective until the study holds MAX_TRIALS trials, appending
// "trial-number pid" to LOG_FILE as each trial starts (so a test can see every execution).
import { appendFileSync } from 'node:fs';
import { openStore } from '../../src/store/store.js';
import { createStudy, RandomSampler, SqlTuneStorage } from '../../src/tune/index.js';

const [location, name, max, log] = process.argv.slice(2);
if (location === undefined || name === undefined || max === undefined || log === undefined) throw new Error('usage: tune-worker STORE STUDY MAX_TRIALS LOG_FILE');
const storage = new SqlTuneStorage(await openStore(location));
const study = await createStudy({ name, direction: 'minimize', sampler: new RandomSampler(), store: storage, loadIfExists: true });
await study.optimize(
  async (trial) => {
    appendFileSync(log, `${trial.number} ${process.pid}\n`);
    const x = trial.suggestFloat('x', -1, 1);
    await trial.report(x * x, 1);
    await new Promise((r) => setTimeout(r, 10));
    return x * x;
  },
  { maxTrials: Number(max) },
);
await storage.close();
