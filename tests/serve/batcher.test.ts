// The dynamic batcher against a model double whose passes finish when the test says so:
// what goes into each pass, and when, is the whole point here.
import { describe, expect, it } from 'vitest';
import { Batcher, type BatchingOptions } from '../../src/serve/batcher.js';
import { ApiError } from '../../src/serve/errors.js';

const SIZE = 4;
const CLASSES = 2;

/** A model whose passes are recorded and held until release() is called. */
function heldModel() {
  const calls: { count: number; firsts: number[]; release: () => void; fail: (e: Error) => void }[] = [];
  const run = (pixels: Uint8Array, count: number): Promise<Float32Array> =>
    new Promise((resolve, reject) => {
      const out = new Float32Array(count * CLASSES);
      // Each image's output echoes its first pixel, so a caller can see it got its own row.
      for (let i = 0; i < count; i++) out[i * CLASSES] = pixels[i * SIZE] ?? -1;
      calls.push({ count, firsts: Array.from({ length: count }, (_, i) => pixels[i * SIZE] ?? -1), release: () => resolve(out), fail: reject });
    });
  return { run, calls };
}

const image = (v: number): Uint8Array => new Uint8Array(SIZE).fill(v);
const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

function batcher(run: (p: Uint8Array, n: number) => Promise<Float32Array>, o: Partial<BatchingOptions> = {}): Batcher {
  return new Batcher(run, SIZE, CLASSES, { maxBatch: 8, maxDelayMs: 50, maxQueue: 16, concurrency: 1, queueTimeoutMs: 0, ...o });
}

describe('Batcher', () => {
  it('runs an image at once when the model is idle', async () => {
    const m = heldModel();
    const b = batcher(m.run);
    const p = b.submit(image(7));
    expect(m.calls).toHaveLength(1); // synchronously: no delay when idle
    expect(m.calls[0]!.count).toBe(1);
    m.calls[0]!.release();
    expect(Array.from(await p)).toEqual([7, 0]);
  });

  it('gathers the images that arrive while the model is busy into the next pass, each answered with its own row', async () => {
    const m = heldModel();
    const b = batcher(m.run);
    const first = b.submit(image(1));
    const rest = [2, 3, 4, 5, 6].map((v) => b.submit(image(v)));
    expect(m.calls).toHaveLength(1);
    expect(b.depth).toBe(5);
    m.calls[0]!.release();
    await first;
    expect(m.calls).toHaveLength(2);
    expect(m.calls[1]!.firsts).toEqual([2, 3, 4, 5, 6]);
    m.calls[1]!.release();
    expect((await Promise.all(rest)).map((o) => o[0])).toEqual([2, 3, 4, 5, 6]);
    await b.idle();
  });

  it('caps a pass at maxBatch images', async () => {
    const m = heldModel();
    const b = batcher(m.run, { maxBatch: 4 });
    const all = Array.from({ length: 11 }, (_, i) => b.submit(image(i)));
    for (let i = 0; i < 4; i++) {
      m.calls[i]!.release();
      await tick();
    }
    expect(m.calls.map((c) => c.count)).toEqual([1, 4, 4, 2]);
    expect((await Promise.all(all)).map((o) => o[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('sends a full batch to a free slot at once, without waiting for the delay', () => {
    const m = heldModel();
    const b = batcher(m.run, { maxBatch: 4, concurrency: 2, maxDelayMs: 10_000 });
    void b.submit(image(0));
    for (let i = 1; i <= 3; i++) void b.submit(image(i));
    expect(m.calls).toHaveLength(1); // partial: waits for more
    void b.submit(image(4));
    expect(m.calls.map((c) => c.count)).toEqual([1, 4]);
    for (const c of m.calls) c.release();
  });

  it('waits at most maxDelayMs with a partial batch while a pass is in flight', async () => {
    const m = heldModel();
    const b = batcher(m.run, { concurrency: 2, maxDelayMs: 40 });
    void b.submit(image(0));
    const t0 = performance.now();
    const second = b.submit(image(1));
    await tick(10);
    expect(m.calls).toHaveLength(1);
    while (m.calls.length < 2) await tick(2);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(38);
    expect(waited).toBeLessThan(1000);
    expect(m.calls[1]!.count).toBe(1);
    for (const c of m.calls) c.release();
    await second;
  });

  it('with batching off (maxBatch 1) runs one image per pass', async () => {
    const m = heldModel();
    const b = batcher(m.run, { maxBatch: 1 });
    const all = [1, 2, 3].map((v) => b.submit(image(v)));
    for (let i = 0; i < 3; i++) {
      m.calls[i]!.release();
      await tick();
    }
    expect(m.calls.map((c) => c.count)).toEqual([1, 1, 1]);
    await Promise.all(all);
  });

  it('refuses images beyond the bounded queue with a 503 naming the limit', async () => {
    const m = heldModel();
    const b = batcher(m.run, { maxQueue: 3 });
    const running = b.submit(image(0));
    const queued = [1, 2, 3].map((v) => b.submit(image(v)));
    const err = await b.submit(image(4)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ statusCode: 503, code: 'queue_full' });
    expect((err as Error).message).toMatch(/queue is full \(3 images/);
    m.calls[0]!.release();
    await running;
    m.calls[1]!.release();
    await Promise.all(queued);
  });

  it('answers an image that waited past queueTimeoutMs with a 503 timeout, and drops it from the pass', async () => {
    const m = heldModel();
    const b = batcher(m.run, { queueTimeoutMs: 30 });
    const running = b.submit(image(0));
    const late = b.submit(image(1)).catch((e: unknown) => e);
    expect(await late).toMatchObject({ statusCode: 503, code: 'timeout' });
    expect(b.depth).toBe(0);
    m.calls[0]!.release();
    await running;
    expect(m.calls).toHaveLength(1);
  });

  it('rejects every image of a failed pass and keeps serving', async () => {
    const m = heldModel();
    const b = batcher(m.run);
    const first = b.submit(image(0)).catch((e: unknown) => e);
    m.calls[0]!.fail(new Error('boom'));
    expect(await first).toMatchObject({ message: 'boom' });
    const next = b.submit(image(9));
    m.calls[1]!.release();
    expect((await next)[0]).toBe(9);
  });

  it('treats a throwing run() like a failed pass', async () => {
    const b = batcher(() => {
      throw new Error('sync failure');
    });
    await expect(b.submit(image(0))).rejects.toThrow('sync failure');
    expect(b.busy).toBe(0);
  });

  it('rejects a wrongly sized image and bad options', async () => {
    const m = heldModel();
    await expect(batcher(m.run).submit(new Uint8Array(3))).rejects.toThrow(/4 pixels, got 3/);
    expect(() => batcher(m.run, { maxBatch: 0 })).toThrow(/maxBatch must be an integer >= 1/);
    expect(() => batcher(m.run, { maxDelayMs: -1 })).toThrow(/maxDelayMs/);
  });
});
