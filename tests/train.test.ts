import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist, Model, models, train, type MnistData, type ProgressInfo } from '../src/index.js';

let data: MnistData;
const dir = mkdtempSync(join(tmpdir(), 'torchlet-train-'));

beforeAll(async () => {
  data = await loadMnist({ trainLimit: 4096, testLimit: 2000 });
});
afterAll(() => {
  data.train.dispose();
  data.test.dispose();
});

function sha(path: string): string {
  return Buffer.from(readFileSync(path)).toString('base64');
}

describe('training on a real MNIST subset', () => {
  it('lowers the loss and lifts accuracy far above chance, reporting progress', async () => {
    const model = new Model(models.super_light, { seed: 42 });
    const progress: ProgressInfo[] = [];
    const result = await train(model, data, {
      epochs: 3,
      aug: true,
      bestPath: join(dir, 'best.pt'),
      checkpointPath: join(dir, 'last.ckpt'),
      onProgress: (_epoch, p) => progress.push(p),
    });
    const [first, , last] = result.history;
    expect(last!.trainLoss).toBeLessThan(first!.trainLoss);
    expect(last!.testAccuracy).toBeGreaterThan(0.8);
    expect(last!.trainAccuracy).toBeGreaterThan(0.8);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.at(-1)).toMatchObject({ step: 32, steps: 32 });
    expect(result.best.by).toBe('test');
    // The saved best weights reproduce the recorded best accuracy.
    const reloaded = Model.fromFile(models.super_light, join(dir, 'best.pt'));
    const evaluated = await reloaded.evaluate(data.test);
    expect(evaluated.accuracy).toBe(result.best.accuracy);
    reloaded.dispose();
    model.dispose();
  });

  it('is deterministic: two seeded CPU runs give bit-identical weights', async () => {
    const paths = [join(dir, 'a.pt'), join(dir, 'b.pt')];
    for (const path of paths) {
      const model = new Model(models.super_light, { seed: 7 });
      await train(model, data, { epochs: 1, seed: 7, aug: true, skipTrainEval: true });
      model.save(path);
      model.dispose();
    }
    expect(sha(paths[0]!)).toBe(sha(paths[1]!));
  });

  it('resumes from a checkpoint to exactly the weights of an uninterrupted run', async () => {
    const full = new Model(models.super_light, { seed: 3 });
    await train(full, data, { epochs: 2, seed: 3, aug: true, skipTrainEval: true });
    full.save(join(dir, 'full.pt'));
    full.dispose();

    const ckpt = join(dir, 'resume.ckpt');
    const first = new Model(models.super_light, { seed: 3 });
    // Interrupt after one of two epochs: the checkpoint is written, the run stops.
    await expect(
      train(first, data, {
        epochs: 2,
        seed: 3,
        aug: true,
        skipTrainEval: true,
        checkpointPath: ckpt,
        onEpoch: () => {
          throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow('interrupted');
    first.dispose();

    const resumed = new Model(models.super_light, { seed: 99 });
    const result = await train(resumed, data, { epochs: 2, seed: 3, aug: true, skipTrainEval: true, resume: ckpt });
    expect(result.history).toHaveLength(2);
    resumed.save(join(dir, 'resumed.pt'));
    resumed.dispose();
    expect(sha(join(dir, 'resumed.pt'))).toBe(sha(join(dir, 'full.pt')));
  });

  it('refuses to resume with a different recipe or from a corrupt checkpoint', async () => {
    const model = new Model(models.super_light, { seed: 1 });
    const ckpt = join(dir, 'r.ckpt');
    await train(model, data, { epochs: 1, seed: 1, skipTrainEval: true, checkpointPath: ckpt });
    await expect(train(model, data, { epochs: 1, seed: 2, skipTrainEval: true, resume: ckpt })).rejects.toThrow(/different seed \(checkpoint: 1, now: 2\)/);
    await expect(train(model, data, { epochs: 1, resume: join(dir, 'best.pt') })).rejects.toThrow(/cannot resume from .*not a readable torchlet checkpoint|not a torchlet checkpoint/);
    model.dispose();
  });

  it('keeps the event loop responsive while an epoch runs', async () => {
    const model = new Model(models.super_light, { seed: 1 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = performance.now();
    await train(model, data, { epochs: 1, skipTrainEval: true });
    const elapsed = performance.now() - started;
    clearInterval(timer);
    // A blocked loop would fire the timer at most once; a free one about every 10 ms.
    expect(ticks).toBeGreaterThan(elapsed / 10 / 4);
    model.dispose();
  });
});
