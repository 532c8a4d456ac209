// Model: a spec compiled to libtorch, with PyTorch-compatible weights.
import { native, type EvalStats, type NativeModel, type StateTensor } from './native.js';
import type { Dataset } from './dataset.js';
import { countParams, type ModelSpec } from './spec.js';

export type { StateTensor } from './native.js';

export interface ModelOptions {
  /** 'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available). Default 'cpu'. */
  device?: string;
  /** Seeds weight initialisation. */
  seed?: number;
}

export interface Prediction {
  digit: number;
  probabilities: number[];
}

export class Model {
  readonly spec: ModelSpec;
  readonly handle: NativeModel;

  constructor(spec: ModelSpec, options: ModelOptions = {}) {
    this.spec = spec;
    this.handle = new (native().Model)(spec, options);
  }

  /** Builds `spec` and loads a state_dict written by torchlet or by PyTorch's torch.save(model.state_dict()). */
  static fromFile<M extends Model>(this: new (spec: ModelSpec, options?: ModelOptions) => M, spec: ModelSpec, path: string, options: ModelOptions = {}): M {
    // `new this`: a subclass (the public Model of src/index.ts) gets instances of itself.
    const model = new this(spec, options);
    try {
      model.load(path);
    } catch (err) {
      model.dispose();
      throw err;
    }
    return model;
  }

  get device(): string {
    return this.handle.device;
  }

  numParams(): number {
    return this.handle.numParams();
  }

  /** Parameter count from the spec alone; equals numParams(). */
  static countParams(spec: ModelSpec): number {
    return countParams(spec);
  }

  /** state_dict names and shapes, in PyTorch's order. */
  stateShapes(): Record<string, number[]> {
    return this.handle.stateShapes();
  }

  /** The state_dict's floating-point entries (weights, biases, batch-norm statistics) as float32 copies on the CPU. */
  stateTensors(): Record<string, StateTensor> {
    return this.handle.stateTensors();
  }

  /** Writes the state_dict atomically; Python reads it with torch.load. */
  save(path: string): void {
    this.handle.save(path);
  }

  load(path: string): void {
    this.handle.load(path);
  }

  to(device: string): void {
    this.handle.to(device);
  }

  /**
   * Log-probabilities for one or more images: uint8 pixels (0-255) or floats (0-1), row-major.
   * The pass runs on the calling thread with one libtorch thread; logProbsAsync runs a batch
   * of more than 64 images on the compute thread, with setThreads' count.
   */
  logProbs(pixels: Uint8Array | Float32Array): Float32Array {
    return this.handle.predict(pixels);
  }

  /**
   * logProbs off the JS thread, for servers: up to 64 images run on a libuv worker with one
   * thread, larger batches on the compute thread; several may be in flight at once, and the
   * model cannot be disposed, moved or trained meanwhile.
   */
  async logProbsAsync(pixels: Uint8Array | Float32Array): Promise<Float32Array> {
    return this.handle.predictAsync(pixels);
  }

  /** Classifies one image. */
  predict(pixels: Uint8Array | Float32Array): Prediction {
    const { channels, height, width } = this.spec.input;
    if (pixels.length !== channels * height * width) {
      throw new RangeError(`predict takes one ${channels}x${height}x${width} image (${channels * height * width} values), got ${pixels.length}; use logProbs for a batch`);
    }
    const probabilities = Array.from(this.handle.predict(pixels), Math.exp);
    const digit = probabilities.indexOf(Math.max(...probabilities));
    return { digit, probabilities };
  }

  /** Eval-mode pass over a dataset under InferenceMode, off the JS thread. */
  async evaluate(data: Dataset, options: { batchSize?: number; logProbs?: boolean } = {}): Promise<EvalStats> {
    return this.handle.evaluate(data.handle, options);
  }

  dispose(): void {
    this.handle.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
