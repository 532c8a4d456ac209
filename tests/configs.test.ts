// Every project setup under configs/ is valid for the one config schema and starts training
// through `torchlet train --config` as it is: each file is run for one epoch on 64 images
// (the flags override only the length of the run and where it writes), and the run's log
// must show the file's own recipe and one recorded epoch.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { choiceObject, readConfig, resolveConfig } from '../src/config.js';
import { readEnsembleFile } from '../src/ensemble/ensemble.js';
import type { OptimizerChoice, SchedulerChoice } from '../src/recipe.js';
import { models } from '../src/zoo/index.js';
import { cli, ROOT } from './helpers/cli.js';

const DIR = join(ROOT, 'configs');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const tmp = mkdtempSync(join(tmpdir(), 'torchlet-configs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('configs/', () => {
  it('holds every project setup of issue 13', () => {
    const names = FILES.map((f) => f.replace(/\.yaml$/, ''));
    expect(names.filter((n) => n.startsWith('simple_conv_net-'))).toHaveLength(6);
    expect(names).toEqual(expect.arrayContaining(['vit', 'parallel_cnn-optuna', 'early-stopping']));
    expect(names.filter((n) => n.startsWith('torchvision-')).map((n) => n.slice('torchvision-'.length))).toEqual(
      ['efficientnet_b0', 'efficientnet_b3', 'mnasnet0_5', 'mnasnet1_0', 'mobilenet_v2', 'mobilenet_v3_large', 'mobilenet_v3_small', 'resnet18', 'resnet34', 'squeezenet1_0', 'squeezenet1_1'],
    );
  });

  it.each(FILES)('%s validates against the config schema and trains an epoch as it is', async (file) => {
    const path = join(DIR, file);
    const config = readConfig(path);
    expect(config.description, 'each file says which project and row it is').toBeTruthy();
    const { config: resolved, recipe } = resolveConfig(config, path, models);

    const name = file.replace(/\.yaml$/, '');
    const logs = join(tmp, `logs-${name}`);
    const r = await cli(
      ['train', '--config', path, '--epochs', '1', '--train-limit', '64', '--test-limit', '20', '--no-track', '--out', join(tmp, `${name}.pt`)],
      { TORCHLET_LOG_DIR: logs },
    );
    expect(r.code, r.stderr).toBe(0);
    const optimizer = choiceObject<OptimizerChoice>(config.optimizer)?.type;
    const scheduler = choiceObject<SchedulerChoice>(config.scheduler as SchedulerChoice | SchedulerChoice['type'] | undefined)?.type;
    expect(r.stderr).toContain(`training ${resolved.model} (`);
    expect(r.stderr).toContain(`1 epochs, ${optimizer} + ${scheduler}`);

    const [jsonl] = readdirSync(logs).filter((f) => f.endsWith('.jsonl'));
    expect(jsonl).toBeDefined();
    const lines = readFileSync(join(logs, jsonl ?? ''), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; recipe?: { lr: number; batchSize: number; weightDecay: number; normalize: string | null }; epoch?: number });
    // The run used the file's recipe, not the defaults.
    expect(lines[0]?.recipe).toMatchObject({ lr: recipe.lr, batchSize: recipe.batchSize, weightDecay: recipe.weightDecay, normalize: recipe.normalize });
    expect(lines.filter((l) => l.type === 'epoch').map((l) => l.epoch)).toEqual([1]);
  });
});

describe('configs/ensembles/', () => {
  const ENSEMBLES = readdirSync(join(DIR, 'ensembles')).filter((f) => f.endsWith('.yaml'));

  it.each(ENSEMBLES)('%s names zoo models whose weights are released or come from a config here', (file) => {
    const { members } = readEnsembleFile(join(DIR, 'ensembles', file));
    expect(members.length).toBeGreaterThanOrEqual(3);
    for (const m of members) {
      expect(Object.keys(models), `${file}: model ${m.model}`).toContain(m.model);
      const weights = relative(ROOT, m.weights);
      if (weights.startsWith('weights/')) {
        expect(existsSync(m.weights), `${file}: ${weights} is released`).toBe(true);
        continue;
      }
      // A config's run writes these weights: the file exists and trains this model to this path.
      const config = FILES.map((f) => readConfig(join(DIR, f))).find((c) => c.out === weights);
      expect(config, `${file}: a config under configs/ writes ${weights}`).toBeDefined();
      expect(config?.model, `${file}: ${weights}`).toBe(m.model);
    }
  });
});
