// The tiny family (issue 15): exact parameter counts under each budget, the PyTorch twins
// (python/tiny_models.py, through python/zoo.py) against torchlet's models with weights
// both ways and equal logits on real MNIST images (helpers/zoo-interop.ts), and
// `torchlet train`/`evaluate` taking them by name.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countParams } from '../src/spec.js';
import { tinyModels } from '../src/models.js';
import { cli, expectNoCrash } from './helpers/cli.js';
import { zooInteropSuite, type Registry } from './helpers/zoo-interop.js';

type TinyName = keyof typeof tinyModels;
const names = Object.keys(tinyModels) as TinyName[];
const registry: Registry = Object.fromEntries(names.map((n) => [n, () => tinyModels[n]]));

zooInteropSuite(names, new Set(names), registry, 'tiny models');

describe('tiny models', () => {
  it.each([
    ['tiny8k', 7_766, 8_000],
    ['tiny5k', 4_582, 5_000],
    ['tiny2k', 1_790, 2_000],
  ] as const)('%s has exactly %i parameters, under %i', (name, params, budget) => {
    expect(countParams(tinyModels[name])).toBe(params);
    expect(params).toBeLessThan(budget);
  });

  const tmp = mkdtempSync(join(tmpdir(), 'torchlet-tiny-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('torchlet train --model tiny2k trains and saves weights that torchlet evaluate --model tiny2k scores', async () => {
    const out = join(tmp, 'tiny2k.pt');
    const trained = await cli(['train', '--model', 'tiny2k', '--epochs', '1', '--train-limit', '2000', '--no-track', '--out', out]);
    expectNoCrash(trained);
    expect(trained.code, trained.stderr).toBe(0);
    expect(trained.stdout).toMatch(/^epoch {2}1 \| /m);
    const scored = await cli(['evaluate', '--model', 'tiny2k', '--weights', out, '--out-dir', tmp]);
    expectNoCrash(scored);
    expect(scored.code, scored.stderr).toBe(0);
    expect(scored.stdout).toMatch(/accuracy/i);
  });
});
