// Datasets as native tensors: the bytes cross into libtorch once, then every batch,
// shuffle and augmentation happens natively.
import { native, type NativeDataset } from './native.js';
import { loadRawDataset, type RawSplit } from './data/mnist.js';

export class Dataset {
  /** The native handle, for passing to lower-level calls. */
  readonly handle: NativeDataset;

  private constructor(handle: NativeDataset) {
    this.handle = handle;
  }

  static fromRaw(split: RawSplit): Dataset {
    return new Dataset(new (native().Dataset)(split.images, split.labels, [split.count, 1, split.rows, split.cols]));
  }

  /** Wraps uint8 images (count x channels x height x width, row-major) and labels. */
  static fromArrays(images: Uint8Array, labels: Uint8Array, shape: [number, number, number, number]): Dataset {
    return new Dataset(new (native().Dataset)(images, labels, shape));
  }

  get size(): number {
    return this.handle.size;
  }

  get shape(): [number, number, number, number] {
    return this.handle.shape;
  }

  /** Rows [start, end) as an independent dataset. */
  slice(start: number, end: number): Dataset {
    return new Dataset(this.handle.subset(start, end));
  }

  /** The given rows, in that order, as an independent dataset. */
  take(indices: Int32Array): Dataset {
    return new Dataset(this.handle.take(indices));
  }

  /** A copy of the labels. */
  labels(): Uint8Array {
    return this.handle.labels();
  }

  /** Frees the native memory now rather than at garbage collection. */
  dispose(): void {
    this.handle.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export interface LoadOptions {
  dataset?: 'mnist' | 'fashion-mnist';
  dataDir?: string;
  download?: boolean;
  /** Use only the first N training images (quick experiments, tests). */
  trainLimit?: number;
  /** Use only the first N test images. */
  testLimit?: number;
}

export interface MnistData {
  train: Dataset;
  test: Dataset;
  dir: string;
}

function limit(split: RawSplit, n: number | undefined): RawSplit {
  if (n === undefined || n >= split.count) return split;
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`a dataset limit must be a positive integer, got ${n}`);
  const pixels = split.rows * split.cols;
  return { ...split, count: n, images: split.images.subarray(0, n * pixels), labels: split.labels.subarray(0, n) };
}

/** Loads MNIST (or Fashion-MNIST), verified, into native memory. */
export async function loadMnist(options: LoadOptions = {}): Promise<MnistData> {
  const raw = await loadRawDataset({
    ...(options.dataset !== undefined && { dataset: options.dataset }),
    ...(options.dataDir !== undefined && { dataDir: options.dataDir }),
    ...(options.download !== undefined && { download: options.download }),
  });
  return {
    train: Dataset.fromRaw(limit(raw.train, options.trainLimit)),
    test: Dataset.fromRaw(limit(raw.test, options.testLimit)),
    dir: raw.dir,
  };
}
