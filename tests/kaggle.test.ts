// Kaggle Digit Recognizer: the CSV reader's validation, `--dataset kaggle:DIR`, and the
// round trip test.csv -> `torchlet submit` -> submission.csv scored against the held labels.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../src/data/errors.js';
import { loadKaggleCsv, Model, models, parseKaggleCsv, submissionCsv } from '../src/index.js';
import { writeKaggleCsvs } from '../scripts/kaggle-csv.js';
import { cli, expectInputError, MNIST_DIR, ROOT } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'torchlet-kaggle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const header = (labelled: boolean): string => [...(labelled ? ['label'] : []), ...Array.from({ length: 784 }, (_, i) => `pixel${i}`)].join(',');
const row = (label: number | undefined, fill: number): string => [...(label === undefined ? [] : [label]), ...new Array<number>(784).fill(fill)].join(',');

describe('parseKaggleCsv', () => {
  it('reads labels and pixels, CRLF or LF, with or without a final newline', () => {
    const text = `${header(true)}\r\n${row(3, 7)}\r\n${row(9, 255)}`;
    const parsed = parseKaggleCsv(text, 'train.csv', true);
    expect(parsed.count).toBe(2);
    expect(Array.from(parsed.labels ?? [])).toEqual([3, 9]);
    expect(parsed.images[0]).toBe(7);
    expect(parsed.images[784 + 783]).toBe(255);
    expect(parseKaggleCsv(`${header(false)}\n${row(undefined, 1)}\n`, 'test.csv', false).count).toBe(1);
  });

  it('names the row and column of every problem', () => {
    const bad = (text: string, labelled = true): string => {
      try {
        parseKaggleCsv(text, 'train.csv', labelled);
      } catch (err) {
        expect(err).toBeInstanceOf(DataError);
        return (err as Error).message;
      }
      throw new Error('no error');
    };
    expect(bad(`${header(false)}\n${row(undefined, 0)}`)).toMatch(/row 1 \(the header\): column 1 is 'pixel0', expected 'label'/);
    expect(bad(`${header(true)},extra\n`)).toMatch(/row 1 \(the header\): it has 786 columns, expected 785/);
    expect(bad(`${header(true)}\n${row(1, 0)}\n${row(12, 0)}`)).toMatch(/row 3, column 1 \(label\): 12 is not a digit 0-9/);
    const pixelRow = [5, ...new Array<number>(784).fill(0)];
    pixelRow[101] = 256;
    expect(bad(`${header(true)}\n${pixelRow.join(',')}`)).toMatch(/row 2, column 102 \(pixel100\): pixel 256 is outside 0-255/);
    pixelRow[101] = -3;
    expect(bad(`${header(true)}\n${pixelRow.join(',')}`)).toMatch(/row 2, column 102 \(pixel100\): '-3' is not a whole number/);
    expect(bad(`${header(true)}\n${row(1, 0).split(',').slice(0, 500).join(',')}`)).toMatch(/row 2 has 500 columns, the header has 785/);
    expect(bad(`${header(true)}\n${row(1, 0)},4`)).toMatch(/row 2 has more than the header's 785 columns/);
    expect(bad(`${header(true)}\n1,,${row(undefined, 0).slice(2)}`)).toMatch(/row 2, column 2 \(pixel0\): the value is empty/);
    expect(bad(`${header(true)}\n`)).toMatch(/no data rows/);
    expect(bad('')).toMatch(/the file is empty/);
  });

  it('writes submissions in Kaggle\'s format: ImageId from 1, then Label', () => {
    expect(submissionCsv(Uint8Array.of(7, 2, 1))).toBe('ImageId,Label\n1,7\n2,2\n3,1\n');
  });
});

describe('Kaggle files generated from the vendored MNIST', () => {
  beforeAll(async () => {
    await writeKaggleCsvs(dir, { dataDir: MNIST_DIR, trainLimit: 1500 });
  });

  it('load as datasets, and a missing train.csv is a clear error', async () => {
    const data = await loadKaggleCsv(dir);
    expect(data.train.size).toBe(1500);
    expect(data.test?.size).toBe(10_000);
    data.train.dispose();
    data.test?.dispose();
    await expect(loadKaggleCsv(join(dir, 'nowhere'))).rejects.toThrow(/train\.csv: no such file/);
  });

  it('round trip: submit on test.csv scores against the held labels exactly as evaluate scores the MNIST test set', async () => {
    const out = join(dir, 'submission.csv');
    const weights = join(ROOT, 'weights', 'super_light.pt');
    const r = await cli(['submit', '--model', 'super_light', '--weights', weights, '--test', join(dir, 'test.csv'), '--out', out, '--device', 'cpu']);
    expect(r.code, r.stderr).toBe(0);
    const submission = readFileSync(out, 'utf8');
    const truth = readFileSync(join(dir, 'test_labels.csv'), 'utf8');
    const lines = submission.trim().split('\n');
    expect(lines[0]).toBe('ImageId,Label');
    expect(lines).toHaveLength(10_001);
    expect(lines[1]).toMatch(/^1,\d$/);
    const labelsOf = (csv: string): string[] => csv.trim().split('\n').slice(1).map((l) => l.split(',')[1] ?? '');
    const predicted = labelsOf(submission);
    const held = labelsOf(truth);
    const accuracy = predicted.filter((p, i) => p === held[i]).length / held.length;

    const { loadMnist } = await import('../src/index.js');
    const data = await loadMnist({ dataDir: MNIST_DIR, trainLimit: 1 });
    const model = Model.fromFile(models.super_light, weights);
    const evaluated = await model.evaluate(data.test);
    expect(accuracy).toBe(evaluated.accuracy);
    expect(accuracy).toBe(0.9959); // the released figure, as `npm run gate` asserts
    model.dispose();
    data.train.dispose();
    data.test.dispose();
  });

  it('trains with --dataset kaggle:DIR, and submit refuses a malformed test.csv naming row and column', async () => {
    const r = await cli(['train', '--dataset', `kaggle:${dir}`, '--epochs', '1', '--val-split', '300', '--out', join(dir, 'k.pt'), '--threads', '1'], { TORCHLET_LOG_DIR: join(dir, 'logs') });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^epoch {2}1 \|/m);
    const broken = join(dir, 'broken.csv');
    writeFileSync(broken, `${header(false)}\n${row(undefined, 0)}\n${row(undefined, 0).replace(/^0,0,0/, '0,0,x')}\n`);
    expectInputError(
      await cli(['submit', '--model', 'super_light', '--weights', join(dir, 'k.pt'), '--test', broken, '--out', join(dir, 's.csv')]),
      /broken\.csv: row 3, column 3 \(pixel2\): 'x' is not a whole number/,
    );
  });
});
