// Finding, downloading and validating MNIST and Fashion-MNIST. Everything here is
// checked before it reaches native code so that a bad file fails with a clear message.
import { createHash, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { packageRoot } from '../package-root.js';
import { DataError } from './errors.js';
import { gunzip, parseIdx, readIdxBytes, type IdxArray } from './idx.js';

export type DatasetName = 'mnist' | 'fashion-mnist';
export type FileKey = 'trainImages' | 'trainLabels' | 'testImages' | 'testLabels';

export interface RawSplit {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

export interface RawDataset {
  name: DatasetName;
  train: RawSplit;
  test: RawSplit;
  dir: string;
}

export interface LoadRawOptions {
  dataset?: DatasetName;
  /** Folder holding the four .gz files; also where missing files are downloaded to. */
  dataDir?: string;
  /** Download missing files (default true). */
  download?: boolean;
  /** Base URLs tried in order; default TORCHLET_MIRRORS (comma-separated) or the built-in list. */
  mirrors?: string[];
  /** Check md5 of the decompressed files (default true). Downloads are always checked. */
  verify?: boolean;
  /** Per-file download timeout (default 120 s). */
  timeoutMs?: number;
}

export const FILE_NAMES: Readonly<Record<FileKey, string>> = {
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
};

/** md5 of the decompressed IDX bytes: gzip output differs between compressors, the content does not. */
export const CHECKSUMS: Readonly<Record<DatasetName, Readonly<Record<FileKey, string>>>> = {
  mnist: {
    trainImages: '6bbc9ace898e44ae57da46a324031adb',
    trainLabels: 'a25bea736e30d166cdddb491f175f624',
    testImages: '2646ac647ad5339dbf082846283269ea',
    testLabels: '27ae3e4e09519cfbb04c329615203637',
  },
  'fashion-mnist': {
    trainImages: 'f4a8712d7a061bf5bd6d2ca38dc4d50a',
    trainLabels: '9018921c3c673c538a1fc5bad174d6f9',
    testImages: '8181f5470baa50b63fa0f6fddb340f0a',
    testLabels: '15d484375f8d13e6eb1aabb0c3f46965',
  },
};

/** The same mirrors torchvision uses. */
export const DEFAULT_MIRRORS: Readonly<Record<DatasetName, readonly string[]>> = {
  mnist: ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'http://yann.lecun.com/exdb/mnist/'],
  'fashion-mnist': ['http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'],
};

const FILE_KEYS = Object.keys(FILE_NAMES) as FileKey[];
const DEFAULT_TIMEOUT_MS = 120_000;
const CLASSES = 10;

const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function cacheDir(dataset: DatasetName, env: NodeJS.ProcessEnv = process.env): string {
  // The XDG spec says relative values must be ignored.
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache');
  return join(base, 'torchlet', dataset);
}

/**
 * The folders searched, in order. The first holding all four files is used; if none
 * does, missing files are downloaded into the last one.
 *
 * - `dataDir`, if given, is the only candidate.
 * - Else `TORCHLET_DATA`, if set, is the only candidate: `$TORCHLET_DATA/<dataset>` when
 *   that subfolder exists, otherwise `$TORCHLET_DATA` itself holds the files.
 * - Else the bundled copy (the repository's data/mnist, or Debian's dataset-fashion-mnist
 *   package), then the user cache `$XDG_CACHE_HOME/torchlet/<dataset>` (~/.cache by default).
 */
export function searchDirs(dataset: DatasetName, dataDir?: string, env: NodeJS.ProcessEnv = process.env): string[] {
  if (dataDir !== undefined) return [resolve(dataDir)];
  const fromEnv = env.TORCHLET_DATA;
  if (fromEnv) {
    const sub = resolve(fromEnv, dataset);
    return [isDirectory(sub) ? sub : resolve(fromEnv)];
  }
  const root = packageRoot();
  const bundled = dataset === 'mnist' ? (root && join(root, 'data', 'mnist')) : '/usr/share/datasets/fashion-mnist';
  return [...(bundled ? [bundled] : []), cacheDir(dataset, env)];
}

export function mirrorList(dataset: DatasetName, mirrors?: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const list =
    mirrors ??
    (env.TORCHLET_MIRRORS ? env.TORCHLET_MIRRORS.split(',').map((m) => m.trim()).filter(Boolean) : DEFAULT_MIRRORS[dataset]);
  // Without the slash, URL resolution would replace the base's last path segment.
  return list.map((m) => (m.endsWith('/') ? m : `${m}/`));
}

// Anything at a file's path counts as present: a directory or other non-file there is
// reported as such when read (IS_DIRECTORY), instead of being "downloaded" over.
async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function missingFiles(dir: string): Promise<FileKey[]> {
  const present = await Promise.all(FILE_KEYS.map((key) => exists(join(dir, FILE_NAMES[key]))));
  return FILE_KEYS.filter((_, i) => !present[i]);
}

function checkMd5(bytes: Uint8Array, expected: string, name: string): void {
  const actual = md5(bytes);
  if (actual !== expected) {
    throw new DataError('CHECKSUM', name, `md5 of the decompressed data is ${actual}, expected ${expected} (corrupt or wrong file?)`);
  }
}

interface Fetched {
  body: Uint8Array;
  content: Uint8Array;
}

async function fetchVerified(url: string, expected: string, timeoutMs: number): Promise<Fetched> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`.trim());
  const body = new Uint8Array(await response.arrayBuffer());
  const content = await gunzip(body, url);
  checkMd5(content, expected, url);
  return { body, content };
}

function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch reports every network failure as "fetch failed" and keeps the reason in `cause`.
  return err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
}

/**
 * Tries each mirror in turn; the file only appears under its final name once verified.
 * Returns the verified decompressed content so the caller need not read it back.
 */
async function download(dest: string, expected: string, mirrors: string[], timeoutMs: number): Promise<Uint8Array> {
  const name = basename(dest);
  const failures: string[] = [];
  for (const mirror of mirrors) {
    const url = new URL(name, mirror).href;
    let fetched: Fetched;
    try {
      fetched = await fetchVerified(url, expected, timeoutMs);
    } catch (err) {
      failures.push(`  ${url}: ${reason(err)}`);
      continue;
    }
    await mkdir(dirname(dest), { recursive: true });
    const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await writeFile(tmp, fetched.body);
      await rename(tmp, dest);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    return fetched.content;
  }
  throw new DataError(
    'DOWNLOAD_FAILED',
    dest,
    `could not download from any mirror:\n${failures.join('\n')}\n` +
      `Download ${name} yourself and pass its folder with --data-dir or TORCHLET_DATA, ` +
      'or set TORCHLET_MIRRORS to other base URLs.',
  );
}

type Reader = (key: FileKey) => Promise<IdxArray>;

async function loadSplit(dir: string, images: FileKey, labels: FileKey, read: Reader): Promise<RawSplit> {
  const imagePath = join(dir, FILE_NAMES[images]);
  const labelPath = join(dir, FILE_NAMES[labels]);
  const [img, lab] = await Promise.all([read(images), read(labels)]);
  const [count, rows, cols] = img.dims;
  if (count === undefined || rows === undefined || cols === undefined || img.dims.length !== 3) {
    throw new DataError('BAD_SHAPE', imagePath, `expected 3-d images [count, rows, cols], found dims [${img.dims.join(', ')}]`);
  }
  if (lab.dims.length !== 1) {
    throw new DataError('BAD_SHAPE', labelPath, `expected 1-d labels [count], found dims [${lab.dims.join(', ')}]`);
  }
  if (lab.data.length !== count) {
    throw new DataError('COUNT_MISMATCH', labelPath, `${lab.data.length} labels but ${FILE_NAMES[images]} has ${count} images`);
  }
  const bad = lab.data.findIndex((label) => label >= CLASSES);
  if (bad >= 0) {
    throw new DataError('LABEL_RANGE', labelPath, `label ${lab.data[bad]} at index ${bad} is outside 0-${CLASSES - 1}`);
  }
  return { images: img.data, labels: lab.data, count, rows, cols };
}

/** Picks the folder to load from, downloading missing files into it; returns what was downloaded. */
async function ensureFiles(name: DatasetName, options: LoadRawOptions): Promise<{ dir: string; downloaded: Map<FileKey, Uint8Array> }> {
  const downloaded = new Map<FileKey, Uint8Array>();
  const candidates = searchDirs(name, options.dataDir);
  for (const dir of candidates) {
    if ((await missingFiles(dir)).length === 0) return { dir, downloaded };
  }
  const dir = candidates.at(-1) ?? cacheDir(name);
  const missing = await missingFiles(dir);
  if (options.download === false) {
    throw new DataError(
      'NOT_FOUND',
      join(dir, FILE_NAMES[missing[0] ?? 'trainImages']),
      `${name} files missing (${missing.map((k) => FILE_NAMES[k]).join(', ')}); searched ${candidates.join(', ')}. ` +
        'Downloading is disabled: supply the files with --data-dir or TORCHLET_DATA.',
    );
  }
  const mirrors = mirrorList(name, options.mirrors);
  for (const key of missing) {
    const dest = join(dir, FILE_NAMES[key]);
    downloaded.set(key, await download(dest, CHECKSUMS[name][key], mirrors, options.timeoutMs ?? DEFAULT_TIMEOUT_MS));
  }
  return { dir, downloaded };
}

/** Finds (downloading if needed), validates and reads a dataset's train and test splits. */
export async function loadRawDataset(options: LoadRawOptions = {}): Promise<RawDataset> {
  const name = options.dataset ?? 'mnist';
  const { dir, downloaded } = await ensureFiles(name, options);
  const unverified = new Map<FileKey, Uint8Array>();
  const read: Reader = async (key) => {
    const path = join(dir, FILE_NAMES[key]);
    // Fresh downloads were verified in memory; reading them back would only repeat the work.
    const fresh = downloaded.get(key);
    if (fresh) return parseIdx(fresh, path);
    const bytes = await readIdxBytes(path);
    if (options.verify !== false) unverified.set(key, bytes);
    return parseIdx(bytes, path);
  };
  const [train, test] = await Promise.all([
    loadSplit(dir, 'trainImages', 'trainLabels', read),
    loadSplit(dir, 'testImages', 'testLabels', read),
  ]);
  // Checksums last: a file that is broken in a way the structure checks can name (wrong
  // magic, truncated, counts or labels that do not fit) gets that specific message
  // rather than only "md5 mismatch"; whatever passes them must still be the exact file.
  for (const key of FILE_KEYS) {
    const bytes = unverified.get(key);
    if (bytes) checkMd5(bytes, CHECKSUMS[name][key], join(dir, FILE_NAMES[key]));
  }
  return { name, train, test, dir };
}
