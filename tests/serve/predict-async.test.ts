// Model.logProbsAsync: the native inference entry point servers use. It must give the
// synchronous path's numbers, run off the event loop, allow several passes at once, and
// keep the model from being disposed or trained underneath them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, superLight } from '../../src/index.js';

let model: Model;
beforeAll(() => {
  model = Model.fromFile(superLight, 'weights/super_light.pt');
});
afterAll(() => model.dispose());

function images(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n * 784);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    out[i] = s % 7 === 0 ? s & 255 : 0;
  }
  return out;
}

describe('Model.logProbsAsync', () => {
  it('gives the synchronous logProbs for one image and for a batch', async () => {
    for (const n of [1, 3, 37]) {
      const x = images(n, n);
      const sync = model.logProbs(x);
      const async = await model.logProbsAsync(x);
      expect(async).toHaveLength(10 * n);
      for (let i = 0; i < sync.length; i++) expect(async[i]).toBeCloseTo(sync[i]!, 5);
    }
  });

  it('takes 0-1 floats like logProbs', async () => {
    const x = images(2, 5);
    const f = Float32Array.from(x, (v) => v / 255);
    const a = await model.logProbsAsync(f);
    const b = model.logProbs(x);
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 4);
  });

  it('copies its input: the caller may overwrite the array while the pass runs', async () => {
    const x = images(64, 9);
    const expected = model.logProbs(x);
    const pending = model.logProbsAsync(x);
    x.fill(255);
    const got = await pending;
    for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(expected[i]!, 5);
  });

  it('runs several passes at once, each with its own answer, and leaves the event loop free', async () => {
    const inputs = [1, 2, 3, 4, 5, 6].map((s) => images(256, s));
    const expected = inputs.map((x) => model.logProbs(x));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    const results = await Promise.all(inputs.map((x) => model.logProbsAsync(x)));
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    results.forEach((r, k) => {
      for (let i = 0; i < r.length; i += 97) expect(r[i]).toBeCloseTo(expected[k]![i]!, 5);
    });
    // The timer kept firing while 1,536 images ran on worker threads.
    expect(elapsed).toBeGreaterThan(5);
    expect(ticks).toBeGreaterThan(0);
  });

  it('keeps the model from being disposed, moved or trained while passes are in flight', async () => {
    const m = Model.fromFile(superLight, 'weights/super_light.pt');
    const pending = m.logProbsAsync(images(512, 3));
    expect(() => m.dispose()).toThrow(/predictions are in flight/);
    expect(() => m.to('cpu')).toThrow(/predictions are in flight/);
    await pending;
    m.dispose();
    expect(m.handle.disposed).toBe(true);
    await expect(m.logProbsAsync(images(1, 1))).rejects.toThrow(/disposed/);
  });

  it('predicts in eval mode even on a model in training mode: dropout off, so repeated calls agree', async () => {
    const fresh = new Model(superLight, { seed: 1 });
    const x = images(4, 11);
    const [a, b] = await Promise.all([fresh.logProbsAsync(x), fresh.logProbsAsync(x)]);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(await fresh.logProbsAsync(x))).toEqual(Array.from(a));
    fresh.dispose();
  });

  it('rejects bad input with a clear error', async () => {
    await expect(model.logProbsAsync(new Uint8Array(100))).rejects.toThrow(/100 values, not a multiple of one image's 784/);
    await expect(model.logProbsAsync(new Uint8Array(0))).rejects.toThrow(/0 values/);
    await expect(model.logProbsAsync(new Int32Array(784) as unknown as Uint8Array)).rejects.toThrow(/Uint8Array \(0-255\) or Float32Array/);
  });
});
