// Ensembles: the vote and its tie-break, one native pass whose members give exactly their
// own predictions, soft voting, single images, and the CLI.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, Ensemble, loadMnist, Model, models, native, readEnsembleFile, type MnistData } from '../src/index.js';
import { loadRawDataset } from '../src/data/mnist.js';
import { cli, expectInputError, MNIST_DIR, ROOT } from './helpers/cli.js';

const weights = (name: string): string => join(ROOT, 'weights', `${name}.pt`);
const dir = mkdtempSync(join(tmpdir(), 'torchlet-ensemble-'));
let data: MnistData;

beforeAll(async () => {
  data = await loadMnist({ dataDir: MNIST_DIR, trainLimit: 1, testLimit: 2000 });
});
afterAll(() => {
  data.train.dispose();
  data.test.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Log-probabilities for members x images x classes from plain probabilities. */
const lp = (probs: number[][][]): Float32Array => Float32Array.from(probs.flat(2).map(Math.log));

describe('the vote', () => {
  it('hard: the majority wins; a tie goes to the tied class with the higher mean probability, then to the lower digit', () => {
    const vote = (probs: number[][][]) => native().ensembleVote(lp(probs), probs.length, probs[0]![0]!.length, 'hard');
    // Three members, two of them say class 2.
    expect(vote([[[0.1, 0.2, 0.7]], [[0.6, 0.1, 0.3]], [[0.2, 0.2, 0.6]]]).predictions[0]).toBe(2);
    // Two members, one vote each for 0 and 1: class 1 has the higher mean probability.
    expect(vote([[[0.6, 0.4]], [[0.3, 0.7]]]).predictions[0]).toBe(1);
    // One vote each, equal mean probabilities: the lower digit.
    const tied = vote([[[0.6, 0.4, 0]], [[0.4, 0.6, 0]]].map((m) => m.map((r) => r.map((p) => p || 1e-30))));
    expect(tied.predictions[0]).toBe(0);
    expect(Array.from(tied.probabilities.subarray(0, 2))).toEqual([0.5, 0.5]);
  });

  it('soft: the highest mean probability, even against the majority', () => {
    const probs = [[[0.45, 0.55]], [[0.45, 0.55]], [[0.99, 0.01]]];
    expect(native().ensembleVote(lp(probs), 3, 2, 'hard').predictions[0]).toBe(1);
    expect(native().ensembleVote(lp(probs), 3, 2, 'soft').predictions[0]).toBe(0);
  });
});

describe('Ensemble', () => {
  it('runs its members in one pass with exactly their own predictions, and votes', async () => {
    const names = ['super_light', 'lightest', 'light'] as const;
    const ensemble = Ensemble.fromFiles(names.map((n) => ({ model: n, weights: weights(n) })));
    const r = await ensemble.evaluate(data.test);
    expect(r.members.map((m) => m.name)).toEqual([...names]);
    for (const [k, name] of names.entries()) {
      const solo = Model.fromFile(models[name], weights(name));
      const own = await solo.evaluate(data.test);
      expect(Array.from(r.members[k]!.predictions)).toEqual(Array.from(own.predictions));
      expect(r.members[k]!.accuracy).toBe(own.accuracy);
      solo.dispose();
    }
    // The vote of the three, recomputed by majority with the defined tie-break.
    const labels = data.test.labels();
    let agree = 0;
    for (let i = 0; i < labels.length; i++) {
      const votes = r.members.map((m) => m.predictions[i]!);
      const counts = new Map<number, number>();
      for (const v of votes) counts.set(v, (counts.get(v) ?? 0) + 1);
      const top = Math.max(...counts.values());
      if (top >= 2) {
        expect(r.predictions[i], `image ${i}`).toBe([...counts].find(([, c]) => c === top)![0]);
        agree++;
      }
    }
    expect(agree).toBeGreaterThan(1990);
    expect(r.accuracy).toBeGreaterThanOrEqual(Math.max(...r.members.map((m) => m.accuracy)) - 0.002);
    // One image through the library gives the same digit as the batch.
    const image = Uint8Array.from({ length: 784 }, () => 0);
    const single = ensemble.predict(image);
    expect(single.votes).toHaveLength(3);
    expect(single.probabilities).toHaveLength(10);
    expect(() => ensemble.predict(new Uint8Array(784 * 2))).toThrow(/predict takes one image/);
    ensemble.dispose();
  });

  it('soft voting averages probabilities', async () => {
    const members = (['super_light', 'lightest'] as const).map((n) => Model.fromFile(models[n], weights(n)));
    const soft = new Ensemble(members, { vote: 'soft' });
    const r = await soft.evaluate(data.test);
    const sums = Array.from({ length: 5 }, (_, i) => r.probabilities.subarray(i * 10, i * 10 + 10).reduce((a, b) => a + b, 0));
    for (const s of sums) expect(s).toBeCloseTo(1, 5);
    soft.dispose();
  });

  it('reads YAML files and refuses bad ones, naming the problem', () => {
    const file = join(dir, 'e.yaml');
    writeFileSync(file, 'name: tiny3\nvote: soft\nmembers:\n  - { model: super_light, weights: a.pt }\n  - { model: light, weights: /abs/b.pt, normalize: minus1-1 }\n');
    expect(readEnsembleFile(file)).toEqual({
      name: 'tiny3',
      vote: 'soft',
      members: [
        { model: 'super_light', weights: join(dir, 'a.pt') },
        { model: 'light', weights: '/abs/b.pt', normalize: 'minus1-1' },
      ],
    });
    writeFileSync(file, 'vote: plurality\nmembers: []\n');
    expect(() => readEnsembleFile(file)).toThrow(/is invalid: vote: .*members: /);
    expect(() => Ensemble.fromFiles([{ model: 'resnet', weights: 'x.pt' }])).toThrow(/unknown model 'resnet'/);
  });
});

describe('torchlet ensemble', () => {
  it('evaluates members given as flags, reports each, writes the charts', async () => {
    const out = join(dir, 'reports');
    const r = await cli(['ensemble', '--member', `super_light=${weights('super_light')}`, '--member', `lightest=${weights('lightest')}`, '--member', `light=${weights('light')}`, '--out-dir', out, '--device', 'cpu', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { ensemble: string; vote: string; accuracy: number; members: { name: string; accuracy: number }[] };
    expect(report).toMatchObject({ ensemble: 'ensemble', vote: 'hard' });
    expect(report.members.map((m) => m.accuracy)).toEqual([0.9959, 0.9943, 0.993]);
    expect(report.accuracy).toBe(0.9965);
    expectInputError(await cli(['ensemble', '--member', 'super_light']), /--member must be MODEL=WEIGHTS/);
  });

  it('classifies images by the ensemble through torchlet predict', async () => {
    const raw = await loadRawDataset({ dataDir: MNIST_DIR });
    const png = join(dir, 'digit.png');
    writeFileSync(png, encodePng(raw.test.images.subarray(0, 784), 28, 28));
    const members = ['super_light', 'lightest', 'light'].flatMap((n) => ['--member', `${n}=${weights(n)}`]);
    const r = await cli(['predict', png, ...members, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [result] = JSON.parse(r.stdout) as { digit: number; probabilities: number[] }[];
    expect(result?.digit).toBe(raw.test.labels[0]);
    // A hard vote's scores are the members' shares of the vote.
    expect(result?.probabilities[result.digit]).toBeCloseTo(1, 5);
  });
});
