// Kaggle's Digit Recognizer files: train.csv (label,pixel0..pixel783) and test.csv
// (pixel0..pixel783), one 28x28 image per row. The format is numbers only, so one pass over
// the bytes parses and validates at once and can name the row and column of any problem;
// a general CSV parser would hand back strings that still need the same checks.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError } from './errors.js';

export const KAGGLE_SIDE = 28;
const PIXELS = KAGGLE_SIDE * KAGGLE_SIDE;
const PIXEL_COLUMNS = Array.from({ length: PIXELS }, (_, i) => `pixel${i}`);

export interface KaggleSplit {
  images: Uint8Array;
  /** train.csv's labels; undefined for test.csv, which has none. */
  labels?: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

/** Parses one Kaggle CSV: `labelled` says whether the first column is `label`. */
export function parseKaggleCsv(text: string | Uint8Array, file: string, labelled: boolean): KaggleSplit {
  const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  if (bytes.length === 0) throw new DataError('EMPTY_FILE', file, 'the file is empty');
  let end = bytes.indexOf(10);
  if (end < 0) end = bytes.length;
  let header = new TextDecoder().decode(bytes.subarray(0, end)).replace(/\r$/, '');
  if (header.charCodeAt(0) === 0xfeff) header = header.slice(1);
  const columns = header.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
  const expected = labelled ? ['label', ...PIXEL_COLUMNS] : PIXEL_COLUMNS;
  const bad = expected.findIndex((name, i) => columns[i] !== name);
  if (bad >= 0 || columns.length !== expected.length) {
    const what =
      bad >= 0
        ? `column ${bad + 1} is '${columns[bad] ?? '(missing)'}', expected '${expected[bad]}'`
        : `it has ${columns.length} columns, expected ${expected.length}`;
    throw new DataError('BAD_CSV', file, `row 1 (the header): ${what} (${labelled ? 'train.csv is label,pixel0..pixel783' : 'test.csv is pixel0..pixel783'})`);
  }
  const width = expected.length;
  // Count the data rows first so the output is allocated once.
  let rows = 0;
  for (let i = end + 1; i < bytes.length; ) {
    let j = bytes.indexOf(10, i);
    if (j < 0) j = bytes.length;
    if (j > i && !(j === i + 1 && bytes[i] === 13)) rows++;
    i = j + 1;
  }
  if (rows === 0) throw new DataError('BAD_CSV', file, 'no data rows after the header');
  const images = new Uint8Array(rows * PIXELS);
  const labels = labelled ? new Uint8Array(rows) : undefined;
  let row = 0;
  let line = 1;
  let i = end + 1;
  while (i < bytes.length) {
    line++;
    let lineEnd = bytes.indexOf(10, i);
    if (lineEnd < 0) lineEnd = bytes.length;
    let stop = lineEnd;
    if (stop > i && bytes[stop - 1] === 13) stop--;
    if (stop === i) {
      i = lineEnd + 1;
      continue;
    }
    let col = 0;
    let p = i;
    while (p <= stop) {
      let value = 0;
      let digits = 0;
      const start = p;
      while (p < stop && bytes[p] !== 44) {
        const b = bytes[p] ?? 0;
        if (b < 48 || b > 57 || digits > 3) {
          let q = p;
          while (q < stop && bytes[q] !== 44) q++;
          const cell = new TextDecoder().decode(bytes.subarray(start, q));
          throw new DataError('BAD_CSV', file, `row ${line}, column ${col + 1} (${expected[col] ?? 'beyond the header'}): '${cell}' is not a whole number in range`);
        }
        value = value * 10 + (b - 48);
        digits++;
        p++;
      }
      if (col >= width) throw new DataError('BAD_CSV', file, `row ${line} has more than the header's ${width} columns`);
      if (digits === 0) throw new DataError('BAD_CSV', file, `row ${line}, column ${col + 1} (${expected[col]}): the value is empty`);
      if (labelled && col === 0) {
        if (value > 9) throw new DataError('LABEL_RANGE', file, `row ${line}, column 1 (label): ${value} is not a digit 0-9`);
        if (labels) labels[row] = value;
      } else {
        if (value > 255) throw new DataError('BAD_CSV', file, `row ${line}, column ${col + 1} (${expected[col]}): pixel ${value} is outside 0-255`);
        images[row * PIXELS + col - (labelled ? 1 : 0)] = value;
      }
      col++;
      p++;
    }
    if (col !== width) throw new DataError('BAD_CSV', file, `row ${line} has ${col} columns, the header has ${width}`);
    row++;
    i = lineEnd + 1;
  }
  return { images, ...(labels && { labels }), count: rows, rows: KAGGLE_SIDE, cols: KAGGLE_SIDE };
}

async function readCsv(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError('NOT_FOUND', path, 'no such file (Kaggle\'s Digit Recognizer files are train.csv and test.csv)');
    if (code === 'EISDIR') throw new DataError('IS_DIRECTORY', path, 'is a directory, not a CSV file');
    throw new DataError('READ_FAILED', path, `cannot read: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads one Kaggle CSV file; `labelled`: train.csv's format, else test.csv's. */
export async function readKaggleCsv(path: string, labelled: boolean): Promise<KaggleSplit> {
  return parseKaggleCsv(await readCsv(path), path, labelled);
}

/** Kaggle's train.csv from `dir`, and test.csv when it is there. */
export async function loadKaggle(dir: string): Promise<{ train: KaggleSplit & { labels: Uint8Array }; test?: KaggleSplit }> {
  const train = await readKaggleCsv(join(dir, 'train.csv'), true);
  if (!train.labels) throw new DataError('BAD_CSV', join(dir, 'train.csv'), 'has no labels');
  let test: KaggleSplit | undefined;
  try {
    test = await readKaggleCsv(join(dir, 'test.csv'), false);
  } catch (err) {
    if (!(err instanceof DataError && err.code === 'NOT_FOUND')) throw err;
  }
  return { train: { ...train, labels: train.labels }, ...(test && { test }) };
}

/** Kaggle's submission format: ImageId (1-based) and Label, with a header, CRLF-free. */
export function submissionCsv(predictions: Uint8Array): string {
  const lines = ['ImageId,Label'];
  predictions.forEach((p, i) => lines.push(`${i + 1},${p}`));
  return `${lines.join('\n')}\n`;
}
