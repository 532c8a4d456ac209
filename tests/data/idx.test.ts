import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DataError, type DataErrorCode } from '../../src/data/errors.js';
import { encodeIdx, parseIdx, readIdxFile } from '../../src/data/idx.js';
import { FILE_NAMES, loadRawDataset, searchDirs, type FileKey } from '../../src/data/mnist.js';

const VENDORED = resolve(import.meta.dirname, '../../data/mnist');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'torchlet-idx-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function expectDataError(promise: Promise<unknown>, code: DataErrorCode, mentions: string): Promise<DataError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataError);
  const dataError = err as DataError;
  expect(dataError.code).toBe(code);
  expect(dataError.message).toContain(mentions);
  return dataError;
}

async function writeTmp(name: string, bytes: Uint8Array): Promise<string> {
  const path = join(tmp, name);
  await writeFile(path, bytes);
  return path;
}

const labelsIdx = (values: number[]): Uint8Array => encodeIdx([values.length], Uint8Array.from(values));
const imagesIdx = (count: number): Uint8Array =>
  encodeIdx([count, 2, 3], Uint8Array.from({ length: count * 6 }, (_, i) => i % 256));

/** A tiny, structurally valid dataset folder whose files can be swapped for broken ones. */
async function writeDataset(name: string, overrides: Partial<Record<FileKey, Uint8Array>> = {}): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  const files: Record<FileKey, Uint8Array> = {
    trainImages: imagesIdx(6),
    trainLabels: labelsIdx([0, 1, 2, 3, 4, 9]),
    testImages: imagesIdx(4),
    testLabels: labelsIdx([5, 6, 7, 8]),
    ...overrides,
  };
  for (const [key, bytes] of Object.entries(files)) await writeFile(join(dir, FILE_NAMES[key as FileKey]), gzipSync(bytes));
  return dir;
}

describe('IDX encoding', () => {
  it('round-trips images and labels, plain and gzipped', async () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 37) % 256);
    const bytes = encodeIdx([2, 3, 4], data);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0, 0, 8, 3]);
    expect(parseIdx(bytes, 'x')).toEqual({ dims: [2, 3, 4], data });
    expect(await readIdxFile(await writeTmp('rt.idx', bytes))).toEqual({ dims: [2, 3, 4], data });
    expect(await readIdxFile(await writeTmp('rt.idx.gz', gzipSync(bytes)))).toEqual({ dims: [2, 3, 4], data });
  });

  it('rejects inconsistent arguments to the encoder', () => {
    expect(() => encodeIdx([2, 2], new Uint8Array(3))).toThrow(RangeError);
    expect(() => encodeIdx([], new Uint8Array(1))).toThrow(RangeError);
    expect(() => encodeIdx([1, 1, 1, 1, 1], new Uint8Array(1))).toThrow(RangeError);
  });
});

describe('corrupt files give a DataError naming the file and the problem', () => {
  it('truncated gzip (a real download cut short)', async () => {
    const real = await readFile(join(VENDORED, FILE_NAMES.testLabels));
    const path = await writeTmp('cut-labels.gz', real.subarray(0, Math.floor(real.length / 2)));
    await expectDataError(readIdxFile(path), 'TRUNCATED_GZIP', 'cut-labels.gz: truncated gzip stream');
  });

  it('corrupt gzip', async () => {
    const real = Buffer.from(await readFile(join(VENDORED, FILE_NAMES.testLabels)));
    real[real.length - 6] = (real[real.length - 6] ?? 0) ^ 0xff; // inside the CRC32 trailer
    await expectDataError(readIdxFile(await writeTmp('bad-crc.gz', real)), 'CORRUPT_GZIP', 'bad-crc.gz');
    await expectDataError(readIdxFile(await writeTmp('plain.gz', labelsIdx([1]))), 'CORRUPT_GZIP', 'plain.gz');
  });

  it('wrong magic, dtype and rank', async () => {
    const good = labelsIdx([1, 2, 3]);
    const withHeader = (i: number, v: number): Uint8Array => {
      const copy = good.slice();
      copy[i] = v;
      return copy;
    };
    await expectDataError(readIdxFile(await writeTmp('magic.idx', withHeader(0, 0x1f))), 'BAD_MAGIC', 'magic.idx: not an IDX file');
    await expectDataError(readIdxFile(await writeTmp('float.idx', withHeader(2, 0x0d))), 'BAD_DTYPE', 'float32');
    await expectDataError(readIdxFile(await writeTmp('rank0.idx', withHeader(3, 0))), 'BAD_DIMS', '0 dimensions');
    await expectDataError(readIdxFile(await writeTmp('rank9.idx', withHeader(3, 9))), 'BAD_DIMS', '9 dimensions');
  });

  it('dims disagreeing with the size, truncated headers and trailing bytes', async () => {
    const good = imagesIdx(3);
    await expectDataError(readIdxFile(await writeTmp('short.idx', good.subarray(0, good.length - 1))), 'SIZE_MISMATCH', 'truncated');
    await expectDataError(readIdxFile(await writeTmp('header.idx', good.subarray(0, 10))), 'TRUNCATED', 'header truncated');
    await expectDataError(readIdxFile(await writeTmp('tiny.idx', good.subarray(0, 3))), 'TRUNCATED', 'too short');
    const long = new Uint8Array(good.length + 2);
    long.set(good);
    await expectDataError(readIdxFile(await writeTmp('long.idx.gz', gzipSync(long))), 'SIZE_MISMATCH', '2 unexpected trailing bytes');
  });

  it('empty file, directory, missing file', async () => {
    await expectDataError(readIdxFile(await writeTmp('empty.gz', new Uint8Array(0))), 'EMPTY_FILE', 'empty.gz: file is empty');
    const dir = join(tmp, 'a-directory.gz');
    await mkdir(dir);
    await expectDataError(readIdxFile(dir), 'IS_DIRECTORY', 'is a directory');
    await expectDataError(readIdxFile(join(tmp, 'nope.gz')), 'NOT_FOUND', 'nope.gz: file not found');
  });
});

describe('dataset validation', () => {
  it('loads a small valid dataset', async () => {
    const dir = await writeDataset('valid');
    const raw = await loadRawDataset({ dataDir: dir, download: false, verify: false });
    expect(raw.dir).toBe(dir);
    expect(raw.train).toMatchObject({ count: 6, rows: 2, cols: 3 });
    expect(Array.from(raw.test.labels)).toEqual([5, 6, 7, 8]);
  });

  it('label outside 0-9 names its index and value', async () => {
    const dir = await writeDataset('labels', { testLabels: labelsIdx([1, 2, 10, 11]) });
    await expectDataError(loadRawDataset({ dataDir: dir, download: false, verify: false }), 'LABEL_RANGE', 'label 10 at index 2');
  });

  it('image and label counts must agree', async () => {
    const dir = await writeDataset('count', { trainLabels: labelsIdx([0, 1, 2]) });
    const err = await expectDataError(loadRawDataset({ dataDir: dir, download: false, verify: false }), 'COUNT_MISMATCH', '3 labels');
    expect(err.file).toBe(join(dir, FILE_NAMES.trainLabels));
  });

  it('images must be 3-d and labels 1-d', async () => {
    const swapped = await writeDataset('swapped', { testImages: labelsIdx([1, 2, 3, 4]) });
    await expectDataError(loadRawDataset({ dataDir: swapped, download: false, verify: false }), 'BAD_SHAPE', '3-d images');
    const flat = await writeDataset('flat', { trainLabels: encodeIdx([6, 1], new Uint8Array(6)) });
    await expectDataError(loadRawDataset({ dataDir: flat, download: false, verify: false }), 'BAD_SHAPE', '1-d labels');
  });

  it('md5 mismatch names expected and actual checksums', async () => {
    const dir = await writeDataset('md5');
    const err = await expectDataError(loadRawDataset({ dataDir: dir, download: false }), 'CHECKSUM', 'expected ');
    expect(err.message).toMatch(/md5 of the decompressed data is [0-9a-f]{32}, expected [0-9a-f]{32}/);
  });

  it('missing files with downloads disabled say how to supply them', async () => {
    const dir = join(tmp, 'nothing-here');
    await expectDataError(loadRawDataset({ dataDir: dir, download: false }), 'NOT_FOUND', '--data-dir or TORCHLET_DATA');
  });
});

describe('real MNIST', () => {
  it('is found in the vendored folder by default', () => {
    expect(searchDirs('mnist', undefined, {})[0]).toBe(VENDORED);
  });

  it('loads 60000 + 10000 verified 28x28 images', async () => {
    const raw = await loadRawDataset({ dataDir: VENDORED, download: false });
    expect(raw.name).toBe('mnist');
    for (const [split, count] of [
      [raw.train, 60000],
      [raw.test, 10000],
    ] as const) {
      expect(split).toMatchObject({ count, rows: 28, cols: 28 });
      expect(split.images.length).toBe(count * 28 * 28);
      const histogram = new Array<number>(10).fill(0);
      for (const label of split.labels) histogram[label] = (histogram[label] ?? 0) + 1;
      expect(histogram.reduce((a, b) => a + b, 0)).toBe(count);
      expect(Math.min(...histogram)).toBeGreaterThan(count / 20);
    }
  });
});
