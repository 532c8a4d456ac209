// The compiled addon and its typed surface. Only this file touches the raw binding.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { packageRoot } from './package-root.js';
import type { ModelSpec } from './spec.js';

export interface ProgressInfo {
  step: number;
  steps: number;
  loss: number;
  accuracy: number;
  lr: number;
}

export interface EpochStats {
  loss: number;
  accuracy: number;
  lr: number;
  seconds: number;
  steps: number;
  samples: number;
}

export interface EvalStats {
  loss: number;
  accuracy: number;
  correct: number;
  count: number;
  seconds: number;
  predictions: Uint8Array;
  logProbs?: Float32Array;
}

export interface OneCycleOptions {
  maxLr: number;
  totalSteps: number;
  pctStart?: number;
  anneal?: 'cos' | 'linear';
  divFactor?: number;
  finalDivFactor?: number;
  threePhase?: boolean;
  cycleMomentum?: boolean;
  baseMomentum?: number;
  maxMomentum?: number;
}

export interface AugmentOptions {
  /** Rotation drawn from [-degrees, degrees]. */
  degrees?: number;
  /** Maximum translation as a fraction of width and height: one number or [x, y]. */
  translate?: number | [number, number];
  scale?: [number, number];
  /** Shear along x in degrees: a number s means [-s, s]. */
  shear?: number | [number, number];
  shearY?: number | [number, number];
  /** RandomPerspective distortion_scale, applied with probability perspectiveP. */
  distortion?: number;
  perspectiveP?: number;
  /**
   * torchvision's ElasticTransform(alpha, sigma) (defaults 50 and 5), applied after the
   * affine and perspective warps within the same single resampling.
   */
  elastic?: { alpha?: number; sigma?: number };
  interpolation?: 'bilinear' | 'nearest';
}

/** PyTorch's optimizers with PyTorch's option names and defaults (weightDecay: 1e-2 for AdamW, else 0). */
export type OptimizerOptions =
  | { type: 'adam' | 'adamw'; lr: number; weightDecay?: number; betas?: [number, number]; eps?: number; amsgrad?: boolean }
  | { type: 'sgd'; lr: number; weightDecay?: number; momentum?: number; dampening?: number; nesterov?: boolean }
  | { type: 'rmsprop'; lr: number; weightDecay?: number; alpha?: number; eps?: number; momentum?: number; centered?: boolean };

/**
 * PyTorch's lr schedulers. `interval` says whether the schedule advances after every batch
 * ('step', OneCycleLR's default) or after every epoch (the others' default).
 */
export type SchedulerOptions = { interval?: 'step' | 'epoch' } & (
  | ({ type: 'onecycle' } & OneCycleOptions)
  /** ConstantLR: lr * factor until index totalIters; the default factor 1 keeps the lr constant. */
  | { type: 'constant'; factor?: number; totalIters?: number }
  | { type: 'step'; stepSize: number; gamma?: number }
  | { type: 'multistep'; milestones: number[]; gamma?: number }
  | { type: 'exponential'; gamma: number }
  | { type: 'cosine'; tMax: number; etaMin?: number }
  /** ReduceLROnPlateau: stepped once per epoch with a metric (Trainer.observe). */
  | {
      type: 'plateau';
      mode?: 'min' | 'max';
      factor?: number;
      patience?: number;
      threshold?: number;
      thresholdMode?: 'rel' | 'abs';
      cooldown?: number;
      minLr?: number;
      eps?: number;
    }
);

export interface TrainerOptions {
  optimizer: OptimizerOptions;
  scheduler?: SchedulerOptions;
  loss?: 'nll' | 'cross_entropy';
  labelSmoothing?: number;
  /** Keep an exponential moving average of the weights with this decay (0: none). */
  emaDecay?: number;
  /** After each epoch, batch norm's running statistics from the clean training images (update_bn). */
  recalibrateBatchNorm?: boolean;
  batchSize?: number;
  seed?: number;
  augment?: AugmentOptions;
}

export interface NativeDataset {
  readonly size: number;
  readonly shape: [number, number, number, number];
  readonly disposed: boolean;
  subset(start: number, end: number): NativeDataset;
  /** The given rows, in that order. */
  take(indices: Int32Array): NativeDataset;
  /** A copy of the labels. */
  labels(): Uint8Array;
  dispose(): void;
}

/** One state_dict entry's values, row-major, as float32. */
export interface StateTensor {
  shape: number[];
  data: Float32Array;
}

export interface NativeModel {
  readonly device: string;
  readonly disposed: boolean;
  numParams(): number;
  stateShapes(): Record<string, number[]>;
  stateTensors(): Record<string, StateTensor>;
  save(path: string): void;
  load(path: string): void;
  predict(pixels: Uint8Array | Float32Array): Float32Array;
  /** predict on a libuv worker thread; several may be in flight on one model. */
  predictAsync(pixels: Uint8Array | Float32Array): Promise<Float32Array>;
  evaluate(data: NativeDataset, options?: { batchSize?: number; logProbs?: boolean }): Promise<EvalStats>;
  to(device: string): void;
  dispose(): void;
}

export interface NativeTrainer {
  readonly step: number;
  readonly lr: number;
  /** One epoch on a worker thread. onProgress returning false, or throwing, stops the epoch and rejects. */
  trainEpoch(data: NativeDataset, epoch: number, onProgress?: (p: ProgressInfo) => unknown): Promise<EpochStats>;
  /** Feeds a plateau schedule its end-of-epoch metric. */
  observe(metric: number): void;
  saveState(path: string, meta: string): void;
  loadState(path: string): string;
  /** Exchanges the model's weights with their moving average; calling it again swaps back. Returns whether the average is now in the model. */
  swapEma(): boolean;
  dispose(): void;
}

/** torchlet's own CPU paths (runtime.ts setCpuKernels); all on by default. */
export interface CpuKernels {
  /** Convolutions take channels-last input (oneDNN's faster layout for training). */
  channelsLast: boolean;
  /** Batch norm + ReLU (+ dropout) as one kernel; only with channelsLast. */
  fusedBatchNorm: boolean;
  /** Convolution kernels cropped to the taps that reach a small input (a 3x3 on a 1x1 map runs as a 1x1). */
  cropConvs: boolean;
  /** Evaluation and prediction through the inference plan: each batch norm and ReLU folded into its conv (XNNPACK for passes of up to 64 rows). */
  inferencePlan: boolean;
  /** Self-attention of up to 64 tokens as one kernel per head, reading in_proj's packed output (the ViT's attention, in training and evaluation). */
  fusedAttention: boolean;
  /** SGD's step as one pass over each parameter, bitwise libtorch's (native/sgd_step.h). */
  fusedOptimizer: boolean;
  /** Fully connected layers of at least 2^20 multiply-adds through oneDNN's sgemm, when libtorch loaded the shared oneDNN (native/linear.h). */
  onednnGemm: boolean;
}

export interface Binding {
  Model: new (spec: ModelSpec, options?: { device?: string; seed?: number }) => NativeModel;
  Dataset: new (images: Uint8Array, labels: Uint8Array, shape: [number, number, number, number]) => NativeDataset;
  Trainer: new (model: NativeModel, options: TrainerOptions) => NativeTrainer;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setCpuKernels(switches: Partial<CpuKernels>): CpuKernels;
  getCpuKernels(): CpuKernels;
  resolveDevice(device: string): string;
  oneCycleSchedule(options: OneCycleOptions, steps: number): { lr: Float64Array; momentum: Float64Array };
  /** lr and momentum (NaN where the schedule leaves it alone) for indices 0..count-1; a plateau schedule observes metrics[i] after index i. */
  lrSchedule(options: SchedulerOptions, baseLr: number, count: number, metrics?: number[]): { lr: Float64Array; momentum: Float64Array };
  /** The parameters after each step of an optimizer fed the given gradients (steps x params.length), for tests. */
  optimizerSteps(options: { optimizer: OptimizerOptions; scheduler?: SchedulerOptions; params: Float32Array; grads: Float32Array; metrics?: number[] }): Float32Array;
  /** Every model over the dataset, one pass per batch, combined by vote; memberPredictions is members x images. */
  ensembleEvaluate(
    models: NativeModel[],
    data: NativeDataset,
    options?: { vote?: 'hard' | 'soft' },
  ): Promise<{ predictions: Uint8Array; probabilities: Float32Array; memberPredictions: Uint8Array; correct: number; memberCorrect: number[]; count: number; seconds: number }>;
  /** The vote over stacked members x images x classes log-probabilities. */
  ensembleVote(logProbs: Float32Array, members: number, classes: number, vote?: 'hard' | 'soft'): { predictions: Uint8Array; probabilities: Float32Array };
  augmentBatch(data: NativeDataset, start: number, count: number, options: AugmentOptions, seed: number): Float32Array;
  /** The training-mode dropout kernel on a flat input: its output and d(sum(output))/dx. */
  hashDropout(x: Float32Array, p: number, seed: number): { output: Float32Array; grad: Float32Array };
  /**
   * The fused batch-norm (+ ReLU + dropout) kernel beside libtorch's unfused ops on the same
   * input (NCHW order), for tests: outputs, gradients of sum(output * upstream), running stats.
   */
  batchNormAct(options: BatchNormActProbe): { fused: BatchNormActResult; reference: BatchNormActResult };
  /** The CPU warp kernel beside libtorch's grid_sample on the same images and [n, 3, 3] warps, for tests. */
  warpImages(options: { x: Float32Array; shape: [number, number, number, number]; theta: Float32Array; displacement?: Float32Array; nearest?: boolean }): {
    direct: Float32Array;
    gridSample: Float32Array;
  };
  /** ElasticTransform's displacement [n, h, w, 2] from given uniform noise [n, 2, h, w], for tests. */
  elasticDisplacement(options: { noise: Float32Array; shape: [number, 2, number, number]; alpha: number; sigma: number }): Float32Array;
  /**
   * Inflates zlib-wrapped deflate data (a PNG's IDAT stream) into `dst` and returns the bytes
   * written: no allocation, so a server can reuse one buffer. Throws a RangeError when the
   * data is invalid, ends early, or inflates to more than `dst` holds.
   */
  inflateInto(src: Uint8Array, dst: Uint8Array): number;
  libtorchVersion: string;
  /** Whether the loaded libtorch brought oneDNN's sgemm (the onednnGemm switch needs it; Debian's libtorch links libdnnl.so.2). */
  oneDnnSgemm: boolean;
}

export interface BatchNormActProbe {
  x: Float32Array;
  shape: [number, number, number, number];
  weight: Float32Array;
  bias: Float32Array;
  upstream: Float32Array;
  relu?: boolean;
  dropout?: number;
  seed?: number;
  training?: boolean;
  runningMean?: Float32Array;
  runningVar?: Float32Array;
}

export interface BatchNormActResult {
  output: Float32Array;
  /** Training only. */
  gradInput?: Float32Array;
  gradWeight?: Float32Array;
  gradBias?: Float32Array;
  runningMean: Float32Array;
  runningVar: Float32Array;
}

let cached: Binding | undefined;

/** Loads the addon once; on failure, says how to build it rather than just "module not found". */
export function native(): Binding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const load = require('node-gyp-build') as (dir: string) => Binding;
  const root = packageRoot();
  if (root === undefined) throw new Error(`torchlet: cannot find the package root (binding.gyp) above ${fileURLToPath(import.meta.url)}`);
  try {
    cached = load(root);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `torchlet: the native addon could not be loaded (${reason}).\n` +
        `Build it with 'npm run build:native' in ${root}; it needs libtorch: set LIBTORCH=/path/to/libtorch, ` +
        `LIBTORCH_USE_PYTORCH=1, or install Debian's libtorch-dev.`,
    );
  }
  return cached;
}
