// `torchlet runs` through the real CLI, over a store holding two small real runs.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRawDataset } from '../src/data/mnist.js';
import { encodePng, loadMnist, Model, models, train } from '../src/index.js';
import { RunStore } from '../src/store/store.js';
import { cli, expectInputError } from './helpers/cli.js';

let tmp: string;
let path: string;
const ids: string[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-cli-runs-'));
  path = join(tmp, 'runs.db');
  const store = await RunStore.open(path);
  const data = await loadMnist({ trainLimit: 256, testLimit: 500 });
  try {
    for (const [name, lr, epochs] of [['slow', 0.002, 2], ['fast', 0.02, 3]] as const) {
      const model = new Model(models.super_light, { seed: 1 });
      const result = await train(model, data, { epochs, lr, maxLr: lr, seed: 1, skipTrainEval: true, store, experiment: 'cli', runName: name });
      model.dispose();
      ids.push(result.runId!);
    }
  } finally {
    data.train.dispose();
    data.test.dispose();
    await store.close();
  }
}, 600_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('torchlet runs', () => {
  it('lists, filters and sorts runs, as a table or JSON', async () => {
    const table = await cli(['runs', 'list', '--store', path]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+EXPERIMENT\s+STATUS\s+MODEL\s+EPOCHS\s+BEST\s+TEST ACC/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[1])).toEqual(['fast', 'slow']);
    expect(lines[1]).toMatch(/fast\s+cli\s+finished\s+super_light\s+3\/3\s+\d+\.\d\d%/);

    const json = await cli(['runs', 'list', '--store', path, '--json', '--sort', 'testLoss:desc', '--status', 'finished', '--experiment', 'cli']);
    expect(json.code, json.stderr).toBe(0);
    const runs = JSON.parse(json.stdout) as { id: string; final: { testLoss: number } }[];
    expect(runs).toHaveLength(2);
    expect(runs[0]!.final.testLoss).toBeGreaterThanOrEqual(runs[1]!.final.testLoss);
    expectInputError(await cli(['runs', 'list', '--store', path, '--sort', 'speed']), /--sort: unknown metric 'speed'/);
  });

  it('shows a run, compares runs with a curves PNG, and exports a run', async () => {
    const show = await cli(['runs', 'show', ids[1]!.slice(0, 6), '--store', path]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`run ${ids[1]}  fast  (experiment cli)`);
    expect(show.stdout).toMatch(/^EPOCH\s+TRAIN LOSS/m);
    expect(show.stdout).toMatch(/best\.pt\s+\d+ bytes {2}sha256 [0-9a-f]{64}/);

    const png = join(tmp, 'compare.png');
    const compare = await cli(['runs', 'compare', ids[0]!, ids[1]!, '--store', path, '--out', png]);
    expect(compare.code, compare.stderr).toBe(0);
    expect(compare.stdout).toMatch(/params that differ:\nPARAM\s+\w{8}\s+\w{8}\nepochs\s+2\s+3\nlr\s+0\.002\s+0\.02\nmaxLr/);
    expect(compare.stdout).toMatch(/^best accuracy\s+\d+\.\d\d%\s+\d+\.\d\d%$/m);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    expectInputError(await cli(['runs', 'compare', ids[0]!, '--store', path]), /compare takes 2 to 10 runs, got 1/);

    const out = join(tmp, 'export');
    const exported = await cli(['runs', 'export', ids[0]!, '--out', out, '--store', path]);
    expect(exported.code, exported.stderr).toBe(0);
    for (const f of ['run.json', 'best.pt', 'checkpoint.ckpt', 'curves.png']) expect(existsSync(join(out, f)), f).toBe(true);
    Model.fromFile(models.super_light, join(out, 'best.pt')).dispose();
    const record = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as { run: { id: string }; epochs: unknown[] };
    expect(record.run.id).toBe(ids[0]);
    expect(record.epochs).toHaveLength(2);
  });

  it("evaluates and predicts with a run's best weights (--run)", async () => {
    const evaluated = await cli(['evaluate', '--run', ids[1]!.slice(0, 8), '--store', path, '--json', '--out-dir', join(tmp, 'reports'), '--device', 'cpu']);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    const report = JSON.parse(evaluated.stdout) as { model: string; weights: string; count: number; accuracy: number };
    expect(report).toMatchObject({ model: 'super_light', count: 10000 });
    expect(report.weights).toMatch(new RegExp(`${ids[1]!.slice(0, 8)}-best\\.pt$`));
    const raw = await loadRawDataset({});
    const png = join(tmp, 'digit.png');
    writeFileSync(png, encodePng(raw.test.images.subarray(0, 784), 28, 28));
    const predicted = await cli(['predict', png, '--run', ids[1]!, '--store', path, '--json']);
    expect(predicted.code, predicted.stderr).toBe(0);
    const [result] = JSON.parse(predicted.stdout) as { digit: number }[];
    expect(result!.digit).toBeGreaterThanOrEqual(0);
    expectInputError(await cli(['evaluate', '--run', ids[1]!, '--model', 'light', '--store', path]), /--model light does not match run [0-9a-f]{32}, which trained super_light/);
    expectInputError(await cli(['evaluate', '--run', ids[1]!, '--weights', 'x.pt', '--store', path]), /give --run, or --weights \/ an ensemble, not both/);
  });

  it('deletes a run, and gc removes it with its artifacts', async () => {
    const del = await cli(['runs', 'delete', ids[0]!, '--store', path]);
    expect(del.code, del.stderr).toBe(0);
    const gc = await cli(['runs', 'gc', '--store', path]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/removed 1 deleted runs and 3 artifacts \(\d+ bytes\)/);
    expectInputError(await cli(['runs', 'show', ids[0]!, '--store', path]), /no run '[0-9a-f]{32}'/);
  });
});
