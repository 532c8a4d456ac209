// Dynamic batching, as Triton's dynamic batcher does it: images that arrive while the
// model is busy are gathered into one forward pass. A batch goes at once when the model is
// idle or the batch is full; a partial batch waits at most maxDelayMs for a free pass slot
// to be worth taking. A bounded queue refuses work beyond it rather than growing without
// limit, and an image that waits too long is dropped with a timeout.
import { DEFAULT_BATCHING } from './defaults.js';
import { ApiError } from './errors.js';

export interface BatchingOptions {
  /** Most images in one forward pass; 1 turns batching off. */
  maxBatch: number;
  /** How long a partial batch may wait for more images while a pass is in flight (ms). */
  maxDelayMs: number;
  /** Images that may wait; one more is refused with 503. */
  maxQueue: number;
  /** Forward passes in flight at once on one model. */
  concurrency: number;
  /** An image still waiting after this long is answered 503 (ms; 0: never). */
  queueTimeoutMs: number;
}

export { DEFAULT_BATCHING };

/** Runs `count` images (`pixels` is count x imageSize bytes) and returns count x width values. */
export type RunBatch = (pixels: Uint8Array, count: number) => Promise<Float32Array>;

export interface BatchObserver {
  onBatch?(size: number, seconds: number): void;
  onQueue?(depth: number, inFlight: number): void;
}

interface Waiting {
  pixels: Uint8Array;
  since: number;
  resolve: (out: Float32Array) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export class Batcher {
  readonly options: BatchingOptions;
  private readonly queue: Waiting[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly run: RunBatch,
    private readonly imageSize: number,
    /** Values per image in what `run` returns. */
    private readonly width: number,
    options: Partial<BatchingOptions> = {},
    private readonly observer: BatchObserver = {},
  ) {
    this.options = checkBatching({ ...DEFAULT_BATCHING, ...options });
  }

  get depth(): number {
    return this.queue.length;
  }

  get busy(): number {
    return this.inFlight;
  }

  /** One image's outputs (`width` values). Rejects with a 503 ApiError when the queue is full or the wait times out. */
  submit(pixels: Uint8Array): Promise<Float32Array> {
    if (pixels.length !== this.imageSize) {
      return Promise.reject(new RangeError(`an image has ${this.imageSize} pixels, got ${pixels.length}`));
    }
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(
        new ApiError(503, 'queue_full', `the inference queue is full (${this.options.maxQueue} images waiting); retry shortly`, { 'retry-after': '1' }),
      );
    }
    return new Promise<Float32Array>((resolve, reject) => {
      const item: Waiting = { pixels, since: performance.now(), resolve, reject, timer: undefined };
      if (this.options.queueTimeoutMs > 0) {
        item.timer = setTimeout(() => this.expire(item), this.options.queueTimeoutMs);
      }
      this.queue.push(item);
      this.pump();
    });
  }

  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private expire(item: Waiting): void {
    const i = this.queue.indexOf(item);
    if (i < 0) return;
    this.queue.splice(i, 1);
    item.reject(new ApiError(503, 'timeout', `the image waited ${this.options.queueTimeoutMs} ms for the model without being run; retry shortly`, { 'retry-after': '1' }));
    this.changed();
  }

  private pump(): void {
    const { maxBatch, maxDelayMs, concurrency } = this.options;
    while (this.queue.length > 0 && this.inFlight < concurrency) {
      const waited = performance.now() - (this.queue[0]?.since ?? 0);
      if (this.inFlight === 0 || this.queue.length >= maxBatch || waited >= maxDelayMs) {
        this.dispatch(this.queue.splice(0, maxBatch));
        continue;
      }
      // A pass is in flight and another slot is free: wait for more images, but not long.
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, maxDelayMs - waited);
      break;
    }
    this.changed();
  }

  private dispatch(batch: Waiting[]): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const n = batch.length;
    const pixels = new Uint8Array(n * this.imageSize);
    batch.forEach((item, i) => {
      clearTimeout(item.timer);
      pixels.set(item.pixels, i * this.imageSize);
    });
    this.inFlight++;
    const t0 = performance.now();
    // run() is called synchronously so that a native call starts before this tick ends.
    let pending: Promise<Float32Array>;
    try {
      pending = this.run(pixels, n);
    } catch (err) {
      pending = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    pending.then(
      (out) => {
        this.observer.onBatch?.(n, (performance.now() - t0) / 1000);
        if (out.length !== n * this.width) {
          const err = new Error(`the model returned ${out.length} values for ${n} images of ${this.width} values each`);
          for (const item of batch) item.reject(err);
        } else {
          batch.forEach((item, i) => item.resolve(out.slice(i * this.width, (i + 1) * this.width)));
        }
        this.finish();
      },
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        for (const item of batch) item.reject(e);
        this.finish();
      },
    );
  }

  private finish(): void {
    this.inFlight--;
    this.pump();
  }

  private changed(): void {
    this.observer.onQueue?.(this.queue.length, this.inFlight);
    if (this.queue.length === 0 && this.inFlight === 0 && this.idleWaiters.length > 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}

export function checkBatching(o: BatchingOptions): BatchingOptions {
  const int = (name: keyof BatchingOptions, min: number): void => {
    if (!Number.isSafeInteger(o[name]) || o[name] < min) throw new RangeError(`batching ${name} must be an integer >= ${min}, got ${o[name]}`);
  };
  int('maxBatch', 1);
  int('maxQueue', 1);
  int('concurrency', 1);
  int('queueTimeoutMs', 0);
  if (!Number.isFinite(o.maxDelayMs) || o.maxDelayMs < 0) throw new RangeError(`batching maxDelayMs must be a number >= 0, got ${o.maxDelayMs}`);
  return o;
}
