// Training epochs, evaluations and large predictions all run on the addon's one compute
// thread (native/compute_thread.cc), queued behind each other. Calls made at once must each
// get what they would have got alone, a C++ error there must reject only its own call, and
// setThreads must reach that thread.
import { afterAll, describe, expect, it } from 'vitest';
import { Dataset, getThreads, Model, models, native, setThreads } from '../src/index.js';

const count = 256;
const pixels = Uint8Array.from({ length: count * 784 }, (_, i) => (i * 97 + (i >> 7) * 31) % 256);
const labels = Uint8Array.from({ length: count }, (_, i) => (i * 7) % 10);

async function trainOnce(seed: number, data: Dataset): Promise<{ model: Model; trainer: ReturnType<typeof trainerFor> }> {
  const model = new Model(models.super_light, { seed });
  const trainer = trainerFor(model);
  await trainer.trainEpoch(data.handle, 0);
  return { model, trainer };
}

function trainerFor(model: Model) {
  return new (native().Trainer)(model.handle, { optimizer: { type: 'sgd', lr: 0.05, momentum: 0.9 }, batchSize: 64, seed: 1 });
}

const weights = (model: Model): number[] => Object.values(model.stateTensors()).flatMap((t) => Array.from(t.data));

describe('the compute thread', () => {
  const data = Dataset.fromArrays(pixels, labels, [count, 1, 28, 28]);
  const threads = getThreads();
  afterAll(() => {
    setThreads(threads);
    data.dispose();
  });

  it('runs epochs, evaluations and large predictions of several models at once, each as it would alone', async () => {
    const alone: { weights: number[]; accuracy: number; logProbs: number[] }[] = [];
    for (const seed of [1, 2]) {
      const { model, trainer } = await trainOnce(seed, data);
      const evaluation = await model.evaluate(data, { batchSize: 100 });
      const logProbs = await model.handle.predictAsync(pixels.subarray(0, 100 * 784));
      alone.push({ weights: weights(model), accuracy: evaluation.accuracy, logProbs: Array.from(logProbs) });
      trainer.dispose();
      model.dispose();
    }
    // The same work again, every call issued before any has finished.
    const a = new Model(models.super_light, { seed: 1 });
    const b = new Model(models.super_light, { seed: 2 });
    const [ta, tb] = [trainerFor(a), trainerFor(b)];
    await Promise.all([ta.trainEpoch(data.handle, 0), tb.trainEpoch(data.handle, 0)]);
    // A model takes one call at a time; two models' calls go together.
    const [ea, eb] = await Promise.all([a.evaluate(data, { batchSize: 100 }), b.evaluate(data, { batchSize: 100 })]);
    const [pa, pb] = await Promise.all([a.handle.predictAsync(pixels.subarray(0, 100 * 784)), b.handle.predictAsync(pixels.subarray(0, 100 * 784))]);
    expect(weights(a)).toEqual(alone[0]?.weights);
    expect(weights(b)).toEqual(alone[1]?.weights);
    expect([ea.accuracy, eb.accuracy]).toEqual([alone[0]?.accuracy, alone[1]?.accuracy]);
    expect(Array.from(pa)).toEqual(alone[0]?.logProbs);
    expect(Array.from(pb)).toEqual(alone[1]?.logProbs);
    // The two seeds trained to different weights, so the comparison tells the calls apart.
    expect(alone[0]?.weights).not.toEqual(alone[1]?.weights);
    for (const x of [ta, tb]) x.dispose();
    a.dispose();
    b.dispose();
  });

  it('rejects only the call whose epoch threw there, and keeps serving the next', async () => {
    // Long enough (120 steps) for a progress report before the end: the callback's false
    // cancels the epoch, which then throws inside the loop, on the compute thread.
    const repeats = (120 * 64) / count;
    const long = Dataset.fromArrays(
      Uint8Array.from({ length: repeats * pixels.length }, (_, i) => pixels[i % pixels.length] ?? 0),
      Uint8Array.from({ length: repeats * count }, (_, i) => labels[i % count] ?? 0),
      [repeats * count, 1, 28, 28],
    );
    const model = new Model(models.super_light, { seed: 3 });
    const trainer = trainerFor(model);
    let reports = 0;
    try {
      await expect(trainer.trainEpoch(long.handle, 0, (p) => (reports++, p.step === p.steps))).rejects.toThrow(/cancelled by the progress callback/);
      expect(reports).toBeGreaterThan(0);
      const e = await trainer.trainEpoch(data.handle, 1);
      expect(e.samples).toBe(count);
      expect(Number.isFinite(e.loss)).toBe(true);
    } finally {
      trainer.dispose();
      model.dispose();
      long.dispose();
    }
  });

  it('takes its thread count from setThreads, and trains to the same weights with one thread or two', async () => {
    const runs: number[][] = [];
    for (const n of [1, 2]) {
      setThreads(n);
      expect(getThreads()).toBe(n);
      const { model, trainer } = await trainOnce(4, data);
      runs.push(weights(model));
      trainer.dispose();
      model.dispose();
    }
    expect(runs[0]?.length).toBeGreaterThan(4000);
    const [one, two] = runs as [number[], number[]];
    const worst = one.reduce((m, v, i) => Math.max(m, Math.abs(v - (two[i] ?? Number.NaN))), 0);
    expect(worst).toBeLessThan(1e-4);
  });
});
