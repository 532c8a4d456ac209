// `torchlet serve --ensemble FILE`: ensembles served by the real server (a child process, over
// HTTP) beside single models, listed by GET /models, answering /predict and /predict/batch
// with the vote that the library's Ensemble gives for the same pixels, tie-break included,
// batched like any model; and refused with clear errors when the file or the flags are wrong.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ensemble, readEnsembleFile } from '../../src/ensemble/index.js';
import { loadRawDataset } from '../../src/data/mnist.js';
import { cli, expectInputError, ROOT } from '../helpers/cli.js';
import { mnistPng, multipart, spawnServer, type Digit } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'torchlet-serve-ensemble-'));
const w = (name: string): string => join(ROOT, 'weights', `${name}.pt`);
// The README's example file.
const TRIO = join(ROOT, 'configs', 'ensembles', 'released-trio.yaml');
const PAIR = join(tmp, 'pair.yaml');
const SOFT = join(tmp, 'soft-trio.yaml');
// Two members: every disagreement is a tie, which the vote breaks by the higher mean probability.
writeFileSync(PAIR, ['name: pair', 'members:', `  - { model: super_light, weights: ${w('super_light')} }`, `  - { model: light, weights: ${w('light')} }`].join('\n'));
// No name in the file: served under the file's name.
writeFileSync(SOFT, ['vote: soft', 'members:', ...['super_light', 'lightest', 'light'].map((m) => `  - { model: ${m}, weights: ${w(m)} }`)].join('\n'));

interface Answer {
  digit: number;
  confidence: number;
  probabilities: number[];
  model: string;
  vote?: string;
  votes?: { member: string; digit: number }[];
  image?: string;
}

let server: Awaited<ReturnType<typeof spawnServer>> | undefined;
const local = new Map<string, Ensemble>();
let digits: Digit[] = [];
/** Test images on which pair's two members disagree, and on which the tie goes to the higher digit. */
const ties: Digit[] = [];

beforeAll(async () => {
  for (const [name, path] of [['trio', TRIO], ['pair', PAIR], ['soft-trio', SOFT]] as const) {
    const file = readEnsembleFile(path);
    local.set(name, Ensemble.fromFiles(file.members, { vote: file.vote ?? 'hard', name }));
  }
  const { test } = await loadRawDataset();
  const at = (index: number): Digit => ({ index, label: test.labels[index] ?? 0, pixels: test.images.slice(index * 784, (index + 1) * 784) });
  digits = Array.from({ length: 8 }, (_, i) => at(i));
  const first = test.images.slice(0, 3000 * 784);
  const { predictions, votes } = local.get('pair')!.scores(first);
  for (let i = 0; i < 3000 && ties.length < 4; i++) {
    const [a, b] = [votes[i] ?? 0, votes[3000 + i] ?? 0];
    if (a !== b && predictions[i] === Math.max(a, b)) ties.push(at(i));
  }
  server = await spawnServer(['--no-runs', '--models', 'super_light', '--ensemble', TRIO, '--ensemble', PAIR, '--ensemble', SOFT, '--max-batch', '16']);
});

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.result;
  for (const e of local.values()) e.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

async function post(path: string, body: unknown): Promise<Answer> {
  const r = await fetch(`${server!.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(r.status, await r.clone().text()).toBe(200);
  return (await r.json()) as Answer;
}

/** The answer is what the library's ensemble gives for these pixels. */
function expectVote(name: string, pixels: Uint8Array, answer: Answer): void {
  const e = local.get(name)!;
  const { predictions, probabilities, votes } = e.scores(pixels);
  expect(answer.model).toBe(name);
  expect(answer.vote).toBe(e.vote);
  expect(answer.digit).toBe(predictions[0]);
  answer.probabilities.forEach((p, c) => expect(p).toBeCloseTo(probabilities[c] ?? NaN, 6));
  expect(answer.confidence).toBeCloseTo(probabilities[answer.digit] ?? NaN, 6);
  expect(answer.votes).toEqual(e.members.map((m, k) => ({ member: m.name, digit: votes[k] })));
}

describe('torchlet serve --ensemble', () => {
  it('lists each ensemble in GET /models: its members, the sum of their parameters, its vote', async () => {
    const body = (await (await fetch(`${server!.url}/models`)).json()) as { default: string; models: { name: string; params: number; vote?: string; members?: { name: string; model: string; params: number }[]; default: boolean }[] };
    expect(body.default).toBe('super_light');
    expect(body.models.map((m) => m.name)).toEqual(['super_light', 'trio', 'pair', 'soft-trio']);
    for (const m of body.models.slice(1)) {
      const e = local.get(m.name)!;
      expect(m.vote).toBe(e.vote);
      expect(m.members).toEqual(e.members.map((x) => ({ name: x.name, model: x.model.spec.name, params: x.model.numParams() })));
      expect(m.params).toBe(m.members!.reduce((n, x) => n + x.params, 0));
    }
    expect(body.models.find((m) => m.name === 'trio')!.params).toBe(4842 + 4274 + 4738);
    expect(body.models[0]).not.toHaveProperty('members');
  });

  it('answers POST /predict?model=NAME with the vote of the library ensemble, hard and soft', async () => {
    for (const d of digits.slice(0, 4)) {
      for (const name of ['trio', 'soft-trio']) {
        const answer = await post(`/predict?model=${name}&image=false`, { pixels: Array.from(d.pixels) });
        expectVote(name, d.pixels, answer);
        expect(answer.digit).toBe(d.label);
      }
    }
  });

  it('breaks a tie as the library does (the higher mean probability), not by the lowest digit', async () => {
    expect(ties.length, 'test images where the pair disagrees and the higher digit wins').toBeGreaterThan(0);
    for (const d of ties) {
      const answer = await post('/predict?model=pair&image=false', { pixels: Array.from(d.pixels) });
      expectVote('pair', d.pixels, answer);
      // Half the votes each: the scores alone would name the lower digit.
      expect(answer.probabilities.filter((p) => p === 0.5)).toHaveLength(2);
      expect(answer.digit).toBe(Math.max(...answer.votes!.map((v) => v.digit)));
    }
  });

  it('answers POST /predict/batch in shared forward passes, each image with its own vote', async () => {
    const images = [...digits, ...ties];
    const form = multipart(images.map((d) => ({ name: 'file', filename: `${d.index}.png`, type: 'image/png', data: mnistPng(d) })));
    const r = await fetch(`${server!.url}/predict/batch?model=pair`, { method: 'POST', headers: { 'content-type': form.contentType }, body: form.body });
    expect(r.status, await r.clone().text()).toBe(200);
    const body = (await r.json()) as { model: string; count: number; results: (Answer & { filename: string })[] };
    expect([body.model, body.count]).toEqual(['pair', images.length]);
    // An MNIST digit sent as a PNG reaches the model unchanged, so the library sees the same pixels.
    body.results.forEach((a, i) => expectVote('pair', images[i]!.pixels, a));
    const metrics = await (await fetch(`${server!.url}/metrics`)).text();
    const count = Number(/^torchlet_batch_size_count\{model="pair"\} (\d+)/m.exec(metrics)?.[1]);
    const sum = Number(/^torchlet_batch_size_sum\{model="pair"\} (\d+)/m.exec(metrics)?.[1]);
    expect(sum).toBeGreaterThanOrEqual(images.length);
    expect(sum / count).toBeGreaterThan(1); // some passes held more than one image
  });

  it('refuses bad input to an ensemble as for any model: 4xx JSON naming the problem', async () => {
    const unknown = await fetch(`${server!.url}/predict?model=quartet`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pixels: Array.from(digits[0]!.pixels) }) });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: 'unknown_model', message: expect.stringMatching(/unknown model 'quartet'.*'trio', 'pair', 'soft-trio'/) });
    const blank = await fetch(`${server!.url}/predict?model=trio`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(0) });
    expect(blank.status).toBe(400);
    expect(await blank.json()).toMatchObject({ error: 'empty' });
    const onnx = await fetch(`${server!.url}/models/trio/model.onnx`);
    expect(onnx.status).toBe(404);
    expect(await onnx.json()).toMatchObject({ error: 'not_exportable', message: expect.stringMatching(/not a single torchlet network/) });
  });

  it('serves an ensemble as the default model with --model NAME', async () => {
    const other = await spawnServer(['--no-runs', '--models', 'light', '--ensemble', PAIR, '--model', 'pair']);
    try {
      const d = ties[0] ?? digits[0]!;
      const r = await fetch(`${other.url}/predict?image=false`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pixels: Array.from(d.pixels) }) });
      expectVote('pair', d.pixels, (await r.json()) as Answer);
    } finally {
      other.child.kill('SIGTERM');
      await other.result;
    }
  });

  it('refuses a missing or invalid file, a name already served and --weights for an ensemble, naming the problem', async () => {
    expectInputError(await cli(['serve', '--no-runs', '--ensemble', join(tmp, 'missing.yaml')]), /cannot serve --ensemble '.*missing\.yaml': .*ENOENT/);
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(bad, `name: bad\nvote: loudest\nmembers:\n  - { model: light, weights: ${w('light')} }\n`);
    expectInputError(await cli(['serve', '--no-runs', '--ensemble', bad]), /cannot serve --ensemble '.*bad\.yaml': ensemble file .* is invalid: vote/);
    const clash = join(tmp, 'clash.yaml');
    writeFileSync(clash, `name: light\nmembers:\n  - { model: light, weights: ${w('light')} }\n`);
    expectInputError(await cli(['serve', '--no-runs', '--models', 'light', '--ensemble', clash]), /cannot serve --ensemble '.*clash\.yaml': a model named 'light' is already served/);
    expectInputError(await cli(['serve', '--no-runs', '--ensemble', PAIR, '--model', 'pair', '--weights', w('light')]), /--weights is for a model; 'pair' is an ensemble/);
  });
});
