// Tuning the real training recipe in-process: validation accuracy is reported per epoch
// and the median pruner really stops a bad trial's training after its first epoch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist, type Dataset } from '../../src/dataset.js';
import { createStudy, MedianPruner, parseSpace, RandomSampler, runRecipeTrial, type EpochRecord } from '../../src/index.js';
import { MNIST_DIR } from '../helpers/cli.js';

let train: Dataset;
let val: Dataset;
beforeAll(async () => {
  const data = await loadMnist({ dataDir: MNIST_DIR, trainLimit: 3000, testLimit: 1 });
  train = data.train.slice(0, 2000);
  val = data.train.slice(2000, 3000);
  data.train.dispose();
  data.test.dispose();
});
afterAll(() => {
  train.dispose();
  val.dispose();
});

describe('the recipe objective', () => {
  it('reports validation accuracy each epoch and the median pruner stops a bad trial after one epoch', async () => {
    const space = parseSpace(
      { valSplit: 1000, fixed: { model: 'super_light', epochs: 3, batchSize: 64 }, params: { maxLr: { low: 1e-6, high: 0.05, log: true } } },
      'test',
    );
    const study = await createStudy({ direction: 'maximize', sampler: new RandomSampler({ seed: 1 }), pruner: new MedianPruner({ nStartupTrials: 2 }) });
    await study.enqueueTrial({ maxLr: 0.01 });
    await study.enqueueTrial({ maxLr: 0.02 });
    await study.enqueueTrial({ maxLr: 1e-6 });
    const epochs = new Map<number, EpochRecord[]>();
    await study.optimize(
      (trial) =>
        runRecipeTrial(trial, {
          space,
          data: { train, val },
          device: 'cpu',
          onEpoch: (t, r) => epochs.set(t.number, [...(epochs.get(t.number) ?? []), r]),
        }),
      { trials: 3 },
    );
    const trials = await study.trials;
    expect(trials.map((t) => t.state)).toEqual(['complete', 'complete', 'pruned']);
    // Trained for one epoch only, and its reported value is that epoch's validation accuracy.
    expect(epochs.get(2)).toHaveLength(1);
    expect([...trials[2]!.intermediate]).toEqual([[1, epochs.get(2)![0]!.testAccuracy]]);
    expect(trials[2]!.value).toBe(epochs.get(2)![0]!.testAccuracy);
    for (const t of trials.slice(0, 2)) {
      expect([...t.intermediate.keys()]).toEqual([1, 2, 3]);
      expect(t.value).toBe(Math.max(...t.intermediate.values()));
      expect(t.value!).toBeGreaterThan(0.5);
    }
  });
});
