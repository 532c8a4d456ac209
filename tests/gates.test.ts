// The release gates (also `npm run gate`): parameter budgets, the released weights'
// accuracy on the full MNIST test set as recorded in the README (the reference models and
// the released tiny models), and a short real training run.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countParams, DOCUMENTED_PARAMS, loadMnist, Model, models, train, type MnistData, type ModelName, type ModelSpec } from '../src/index.js';
import { tinyModels } from '../src/models.js';

/** The lowest full-test-set accuracy each released model may have. */
const THRESHOLDS: Record<ModelName, number> = { light: 0.9927, lightest: 0.994, super_light: 0.994 };

/**
 * The released tiny models (issue 15) and their exact parameter counts. Each file is the
 * final epoch of the seed training-logs/tiny/DECISIONS.md declared before the runs; the
 * issue's targets are not thresholds here (README: they are not reached).
 */
const RELEASED_TINY = { tiny8k: 7_950, tiny5k: 4_946, tiny2k: 1_978 } as const satisfies Record<keyof typeof tinyModels, number>;

/** Accuracy per released weights file, as the README's "Released weights" table records it. */
function readmeFigures(): Map<string, number> {
  const figures = new Map<string, number>();
  for (const m of readFileSync('README.md', 'utf8').matchAll(/^\| `weights\/(\w+)\.pt` \|.*\| \*\*(\d+\.\d+)%\*\* \|/gm)) {
    figures.set(m[1]!, Number(m[2]));
  }
  return figures;
}

let data: MnistData;

/** weights/<name>.pt's accuracy on the full test set, asserted equal to the README's figure. */
async function releasedAccuracy(spec: ModelSpec, name: string): Promise<number> {
  const path = `weights/${name}.pt`;
  expect(existsSync(path), `${path} is released`).toBe(true);
  const model = Model.fromFile(spec, path);
  const { accuracy, count } = await model.evaluate(data.test);
  model.dispose();
  expect(count).toBe(10_000);
  expect(readmeFigures().get(name), `README figure for ${name}`).toBe(Number((100 * accuracy).toFixed(2)));
  return accuracy;
}

beforeAll(async () => {
  data = await loadMnist();
});
afterAll(() => {
  data.train.dispose();
  data.test.dispose();
});

describe('gates', () => {
  it.each(Object.keys(models) as ModelName[])('%s stays under 8,000 parameters and equals its documented count', (name) => {
    expect(countParams(models[name])).toBe(DOCUMENTED_PARAMS[name]);
    expect(DOCUMENTED_PARAMS[name]).toBeLessThan(8000);
  });

  it.each(Object.keys(models) as ModelName[])('weights/%s.pt scores its threshold and the README figure on the full test set', async (name) => {
    expect(await releasedAccuracy(models[name], name)).toBeGreaterThanOrEqual(THRESHOLDS[name]);
  });

  it.each(Object.entries(RELEASED_TINY))('%s has exactly %i parameters', (name, params) => {
    expect(countParams(tinyModels[name as keyof typeof RELEASED_TINY])).toBe(params);
  });

  it.each(Object.keys(RELEASED_TINY) as (keyof typeof RELEASED_TINY)[])('weights/%s.pt scores the README figure on the full test set', async (name) => {
    await releasedAccuracy(tinyModels[name], name);
  });

  it('one epoch of SuperLight on the full training set reaches at least 97%', async () => {
    const model = new Model(models.super_light, { seed: 42 });
    const result = await train(model, data, { epochs: 1, aug: true, skipTrainEval: true });
    model.dispose();
    expect(data.train.size).toBe(60_000);
    expect(result.final.testAccuracy).toBeGreaterThanOrEqual(0.97);
  });
});
