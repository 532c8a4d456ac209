// The models a server answers with. An entry is anything that can classify a batch of
// MNIST-format images: a torchlet Model, an ensemble, a run's weights. Each entry gets its
// own dynamic batcher, so every model served, whoever added it, is batched the same way.
import type { Vote } from '../ensemble/index.js';
import { Batcher, type BatchingOptions } from './batcher.js';
import { ApiError } from './errors.js';

/** Pixels in one MNIST-format image: 28 x 28, one byte each, light ink on black. */
export const IMAGE_PIXELS = 28 * 28;

export interface ServedModel {
  readonly name: string;
  /** One line for GET /models and the page's model menu. */
  readonly description: string;
  readonly params: number;
  /** Accuracy on the 10,000-image MNIST test set (0-1), when known. */
  readonly accuracy: number | null;
  /** Where the weights come from. */
  readonly source: string;
  readonly classes: number;
  /** Seconds taken to load, for /metrics. */
  readonly loadSeconds?: number;
  /** An ensemble's vote and members (GET /models lists them). */
  readonly ensemble?: { readonly vote: Vote; readonly members: readonly ServedMember[] };
  /**
   * For `count` images of IMAGE_PIXELS bytes each (28x28, 0-255, light ink on black), count x
   * outputWidth(this) values: per image the class scores (probabilities; an ensemble's hard
   * vote gives shares of votes), and for an ensemble then the vote's digit (ties broken by
   * the vote, which the scores alone cannot say) and each member's digit.
   */
  classify(pixels: Uint8Array, count: number): Promise<Float32Array>;
  /** The network as an ONNX file (the page's in-browser mode runs it), for models that are one torchlet network. */
  onnx?(): Uint8Array;
  dispose?(): void;
}

export interface ServedMember {
  name: string;
  /** The architecture. */
  model: string;
  params: number;
}

/** Values per image in what `model.classify` returns. */
export function outputWidth(model: ServedModel): number {
  return model.classes + (model.ensemble === undefined ? 0 : 1 + model.ensemble.members.length);
}

/** One image's row of `classify`, read: the scores, the digit and (for an ensemble) each member's digit. */
export function readOutput(model: ServedModel, row: Float32Array): { scores: Float32Array; digit: number; votes?: { member: string; digit: number }[] } {
  const scores = row.subarray(0, model.classes);
  if (model.ensemble !== undefined) {
    return { scores, digit: row[model.classes] ?? 0, votes: model.ensemble.members.map((m, k) => ({ member: m.name, digit: row[model.classes + 1 + k] ?? 0 })) };
  }
  let digit = 0;
  for (let i = 1; i < scores.length; i++) if ((scores[i] ?? 0) > (scores[digit] ?? 0)) digit = i;
  return { scores, digit };
}

export interface RegistryObserver {
  onBatch?(model: string, size: number, seconds: number): void;
  onQueue?(model: string, depth: number, inFlight: number): void;
}

interface Entry {
  model: ServedModel;
  batcher: Batcher;
  /** Requests holding the model (see hold()). */
  users: number;
  /** Set by remove() while it waits for the last user. */
  unused?: () => void;
}

/** A model held by one request: remove() leaves it working until release(). */
export interface HeldModel {
  model: ServedModel;
  batcher: Batcher;
  release(): void;
}

export class ModelRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly observers: RegistryObserver[] = [];
  private defaultName: string | undefined;

  constructor(readonly batching: Partial<BatchingOptions> = {}) {}

  /** Adds a model; the first one added (or one added with default: true) answers requests that name none. */
  add(model: ServedModel, options: { default?: boolean; batching?: Partial<BatchingOptions> } = {}): void {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(model.name)) {
      throw new RangeError(`a served model's name must be 1-64 letters, digits, '_', '.', ':' or '-', got '${model.name}'`);
    }
    if (this.entries.has(model.name)) throw new RangeError(`a model named '${model.name}' is already served`);
    const name = model.name;
    const batcher = new Batcher((pixels, count) => model.classify(pixels, count), IMAGE_PIXELS, outputWidth(model), { ...this.batching, ...options.batching }, {
      onBatch: (size, seconds) => this.observers.forEach((o) => o.onBatch?.(name, size, seconds)),
      onQueue: (depth, inFlight) => this.observers.forEach((o) => o.onQueue?.(name, depth, inFlight)),
    });
    this.entries.set(name, { model, batcher, users: 0 });
    if (options.default || this.defaultName === undefined) this.defaultName = name;
  }

  /** Stops serving a model once its queued work is done, then disposes it. */
  async remove(name: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) return;
    this.entries.delete(name);
    if (this.defaultName === name) this.defaultName = this.entries.keys().next().value;
    // A request that took the model before it was removed (say, before its image was
    // decoded) still gets its answer from it.
    if (entry.users > 0) await new Promise<void>((resolve) => (entry.unused = resolve));
    await entry.batcher.idle();
    entry.model.dispose?.();
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  get default(): string | undefined {
    return this.defaultName;
  }

  list(): ServedModel[] {
    return [...this.entries.values()].map((e) => e.model);
  }

  /** The model called `name` (the default one when undefined); 404 naming the served models otherwise. */
  get(name?: string): ServedModel {
    return this.entry(name).model;
  }

  /** The model `name` (or the default) for one request; release() it when the request is done. */
  hold(name?: string): HeldModel {
    const entry = this.entry(name);
    entry.users++;
    let held = true;
    return {
      model: entry.model,
      batcher: entry.batcher,
      release: () => {
        if (!held) return;
        held = false;
        if (--entry.users === 0) entry.unused?.();
      },
    };
  }

  observe(observer: RegistryObserver): () => void {
    this.observers.push(observer);
    return () => {
      const i = this.observers.indexOf(observer);
      if (i >= 0) this.observers.splice(i, 1);
    };
  }

  /** Resolves when no model has work queued or in flight. */
  async idle(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.batcher.idle()));
  }

  /** Waits for work in flight, then disposes every model. */
  async close(): Promise<void> {
    await this.idle();
    for (const { model } of this.entries.values()) model.dispose?.();
    this.entries.clear();
    this.defaultName = undefined;
  }

  private entry(name?: string): Entry {
    const key = name ?? this.defaultName;
    const entry = key === undefined ? undefined : this.entries.get(key);
    if (entry) return entry;
    const known = [...this.entries.keys()];
    if (key === undefined) throw new ApiError(503, 'no_model', 'no model is loaded');
    throw new ApiError(404, 'unknown_model', `unknown model '${key}'; this server has ${known.map((k) => `'${k}'`).join(', ') || 'no models'}`);
  }
}
