// Corrupt MNIST files, built from the real ones: the loader and the CLI must name the
// file and the specific problem (exit code 2), never crash and never start training.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError, type DataErrorCode } from '../../src/data/errors.js';
import { encodeIdx, parseIdx } from '../../src/data/idx.js';
import { CHECKSUMS, FILE_NAMES, loadRawDataset, type FileKey } from '../../src/data/mnist.js';
import { MNIST_DIR, cli, escapeRegExp, expectInputError } from '../helpers/cli.js';
import { missing } from '../helpers/requires.js';

const hasMnist = Object.values(FILE_NAMES).every((f) => existsSync(join(MNIST_DIR, f)));
let tmp: string;
const raw = new Map<FileKey, Uint8Array>();

const gz = (bytes: Uint8Array): Buffer => gzipSync(bytes, { level: 1 });
const idx = (key: FileKey) => parseIdx(raw.get(key)!, key);

interface Case {
  name: string;
  file: FileKey;
  /** What to put at the file's path: bytes (written as-is), or 'directory'. */
  make: () => Uint8Array | 'directory';
  code: DataErrorCode;
  /** The problem as the user reads it, after "torchlet: <path>: ". */
  message: RegExp;
}

const cases: Case[] = [
  {
    name: 'a truncated .gz',
    file: 'trainLabels',
    make: () => readFileSync(join(MNIST_DIR, FILE_NAMES.trainLabels)).subarray(0, 10_000),
    code: 'TRUNCATED_GZIP',
    message: /^truncated gzip stream \(is the download incomplete\?\)$/,
  },
  {
    name: 'wrong magic (a doubly gzipped file)',
    file: 'testLabels',
    make: () => gz(gz(raw.get('testLabels')!)),
    code: 'BAD_MAGIC',
    message: /^not an IDX file: magic 0x1f8b08[0-9a-f]{2} should start with two zero bytes$/,
  },
  {
    name: 'dims that disagree with the file size',
    file: 'testImages',
    make: () => {
      const bytes = raw.get('testImages')!.slice();
      new DataView(bytes.buffer).setUint32(4, 10_001); // one image more than the file holds
      return gz(bytes);
    },
    code: 'SIZE_MISMATCH',
    message: /^truncated: dims \[10001, 28, 28\] need 7840784 data bytes but only 7840000 are present \(is the file incomplete\?\)$/,
  },
  {
    name: 'an image/label count mismatch (valid IDX files)',
    file: 'trainLabels',
    make: () => gz(encodeIdx([59_999], idx('trainLabels').data.subarray(0, 59_999))),
    code: 'COUNT_MISMATCH',
    message: /^59999 labels but train-images-idx3-ubyte\.gz has 60000 images$/,
  },
  {
    name: 'an md5 mismatch (a valid IDX file whose content differs)',
    file: 'testLabels',
    make: () => {
      const labels = idx('testLabels').data.slice();
      labels[0] = (labels[0]! + 1) % 10; // still a digit, so only the checksum can tell
      return gz(encodeIdx([labels.length], labels));
    },
    code: 'CHECKSUM',
    message: new RegExp(`^md5 of the decompressed data is [0-9a-f]{32}, expected ${CHECKSUMS.mnist.testLabels} \\(corrupt or wrong file\\?\\)$`),
  },
  {
    name: 'a label outside 0-9',
    file: 'trainLabels',
    make: () => {
      const labels = idx('trainLabels').data.slice();
      labels[123] = 10;
      return gz(encodeIdx([labels.length], labels));
    },
    code: 'LABEL_RANGE',
    message: /^label 10 at index 123 is outside 0-9$/,
  },
  {
    name: 'an empty file',
    file: 'testImages',
    make: () => new Uint8Array(0),
    code: 'EMPTY_FILE',
    message: /^file is empty \(is the download incomplete\?\)$/,
  },
  {
    name: 'a directory where a file should be',
    file: 'trainImages',
    make: () => 'directory',
    code: 'IS_DIRECTORY',
    message: /^is a directory, expected an IDX file$/,
  },
];

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-bad-data-'));
  if (!hasMnist) return;
  for (const key of Object.keys(FILE_NAMES) as FileKey[]) raw.set(key, gunzipSync(readFileSync(join(MNIST_DIR, FILE_NAMES[key]))));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A data dir holding the three good files and the broken one. */
function dataDir(c: Case, index: number): string {
  const dir = join(tmp, `case-${index}`);
  mkdirSync(dir, { recursive: true });
  for (const key of Object.keys(FILE_NAMES) as FileKey[]) {
    const dest = join(dir, FILE_NAMES[key]);
    if (key !== c.file) {
      copyFileSync(join(MNIST_DIR, FILE_NAMES[key]), dest);
      continue;
    }
    const content = c.make();
    if (content === 'directory') mkdirSync(dest);
    else writeFileSync(dest, content);
  }
  return dir;
}

describe.skipIf(missing(hasMnist, 'the MNIST files'))('corrupt MNIST files', () => {
  it('the unmodified copies load and train (the baseline the cases differ from)', async () => {
    const dir = join(tmp, 'good');
    mkdirSync(dir);
    for (const f of Object.values(FILE_NAMES)) copyFileSync(join(MNIST_DIR, f), join(dir, f));
    const out = join(tmp, 'good.pt');
    const r = await cli(['train', '--epochs', '1', '--train-limit', '500', '--data-dir', dir, '--out', out, '--threads', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(out)).toBe(true);
  });

  it.each(cases.map((c, i) => [c.name, c, i] as const))('%s: a DataError naming the file and problem, exit 2', async (_name, c, i) => {
    const dir = dataDir(c, i);
    const path = join(dir, FILE_NAMES[c.file]);

    // The library: a DataError with a code to branch on.
    const err = await loadRawDataset({ dataDir: dir, download: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DataError);
    const dataErr = err as DataError;
    expect(dataErr.code).toBe(c.code);
    expect(dataErr.file).toBe(path);
    expect(dataErr.message.slice(`${path}: `.length)).toMatch(c.message);

    // The CLI: one line, the same message, exit code 2, nothing trained or written.
    const out = join(tmp, `case-${i}.pt`);
    const r = await cli(['train', '--epochs', '1', '--train-limit', '500', '--data-dir', dir, '--out', out, '--threads', '1']);
    expectInputError(r, new RegExp(`^torchlet: ${escapeRegExp(path)}: ${c.message.source.slice(1, -1)}$`, 'm'));
    expect(r.stdout).not.toMatch(/epoch/);
    expect(existsSync(out)).toBe(false);
  });
});
