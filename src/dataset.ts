// Datasets as native tensors: the bytes cross into libtorch once, then every batch,
// shuffle and augmentation happens natively.
import { native, type NativeDataset } from './native.js';
import { loadRawDataset, type RawSplit } from './data/mnist.js';
import { KAGGLE_SIDE, loadKaggle } from './data/kaggle.js';

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

export interface KaggleData {
  /** train.csv, labelled. */
  train: Dataset;
  /** test.csv's images, with every label 0 (Kaggle holds the answers back); absent when there is no test.csv. */
  test?: Dataset;
  dir: string;
}

/** Kaggle Digit Recognizer's train.csv (and test.csv) from `dir`, validated, into native memory. */
export async function loadKaggleCsv(dir: string, options: { trainLimit?: number } = {}): Promise<KaggleData> {
  const { train, test } = await loadKaggle(dir);
  const shape = (n: number): [number, number, number, number] => [n, 1, KAGGLE_SIDE, KAGGLE_SIDE];
  const limited = limit({ ...train, labels: train.labels }, options.trainLimit);
  return {
    train: Dataset.fromArrays(limited.images, limited.labels, shape(limited.count)),
    ...(test && { test: Dataset.fromArrays(test.images, new Uint8Array(test.count), shape(test.count)) }),
    dir,
  };
}
