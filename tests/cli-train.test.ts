// `torchlet train` end to end through the real CLI entry point, on small real subsets.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Model, models } from '../src/index.js';
import { RunStore } from '../src/store/store.js';
import { CLI_STORE, cli, expectInputError, expectNoCrash, finished, spawnCli } from './helpers/cli.js';
import { missing } from './helpers/requires.js';

const tmp = mkdtempSync(join(tmpdir(), 'torchlet-cli-train-'));

function epochLines(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l.startsWith('epoch '));
}

describe('torchlet train', () => {
  it('trains, logs every epoch as text and JSONL, and saves best weights and a checkpoint', async () => {
    const logs = join(tmp, 'logs');
    const out = join(tmp, 'run', 'sl.pt');
    const r = await cli(['train', '--model', 'super_light', '--aug', '--epochs', '2', '--train-limit', '2000', '--out', out], { TORCHLET_LOG_DIR: logs });
    expectNoCrash(r);
    expect(r.code, r.stderr).toBe(0);
    // Piped output: plain lines, no progress bar.
    expect(epochLines(r.stdout)).toHaveLength(2);
    expect(r.stdout).not.toContain('\r');
    expect(r.stdout).not.toContain('\u001b[');
    expect(existsSync(out)).toBe(true);
    expect(existsSync(join(tmp, 'run', 'sl.ckpt'))).toBe(true);
    const files = readdirSync(logs).sort();
    expect(files).toHaveLength(2);
    expect(files[0]).toMatch(/^super_light-aug-\d{4}-\d\d-\d\dT.*\.jsonl$/);
    const records = readFileSync(join(logs, files[0]!), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records[0]).toMatchObject({ type: 'run', model: 'super_light', aug: true, params: 4842 });
    expect(records.slice(1).map((e) => e.epoch)).toEqual([1, 2]);
    for (const key of ['trainLoss', 'trainAccuracy', 'testLoss', 'testAccuracy', 'lr', 'seconds']) expect(typeof records[1]![key]).toBe('number');
    expect(readFileSync(join(logs, files[1]!), 'utf8')).toMatch(/epoch {2}2 \| train loss/);
    // The best weights are a loadable state_dict for the model.
    Model.fromFile(models.super_light, out).dispose();
    // The run is in the store (TORCHLET_STORE), with its epochs and every artifact.
    const id = /^run ([0-9a-f]{32}) recorded in /m.exec(r.stdout)?.[1];
    expect(id, r.stdout).toBeDefined();
    const store = await RunStore.open(CLI_STORE);
    try {
      const run = await store.getRun(id!);
      expect(run).toMatchObject({ name: 'super_light-aug', experiment: 'default', status: 'finished' });
      expect(run.config).toMatchObject({ model: 'super_light', aug: true, epochs: 2, trainLimit: 2000, out });
      expect((await store.epochs(id!)).map((e) => e.epoch)).toEqual([1, 2]);
      expect((await store.artifacts(id!)).map((a) => a.name)).toEqual(['best.pt', 'checkpoint.ckpt', 'curves.png', 'report.json', 'train.log']);
      expect((await store.artifact(id!, 'best.pt'))!.data).toEqual(readFileSync(out));
      expect((await store.artifact(id!, 'train.log'))!.data.toString()).toMatch(/epoch {2}2 \| train loss/);
      const report = JSON.parse((await store.artifact(id!, 'report.json'))!.data.toString()) as { accuracy: number; confusionMatrix: number[][] };
      expect(report.accuracy).toBe(run.best!.accuracy);
      expect(report.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(10000);
    } finally {
      await store.close();
    }
  });

  it('Ctrl-C stops at the next step: exit 130, the run recorded as cancelled with its saved epochs and checkpoint', async () => {
    const path = join(tmp, 'interrupted', 'runs.db');
    const out = join(tmp, 'interrupted.pt');
    const child = spawnCli(['train', '--model', 'lightest', '--epochs', '20', '--train-limit', '2000', '--threads', '1', '--out', out, '--store', path, '--run-name', 'interrupted']);
    const done = finished(child);
    let seen = '';
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => ((seen += d.toString()), /^epoch {2}1 \|/m.test(seen) && resolve())));
    child.kill('SIGINT');
    const r = await done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/interrupted; .*interrupted\.ckpt holds the last finished epoch .*the run is recorded as cancelled/);
    const store = await RunStore.open(path);
    try {
      const [run] = await store.listRuns();
      expect(run).toMatchObject({ name: 'interrupted', status: 'cancelled' });
      const epochs = await store.epochs(run!.id);
      expect(epochs.length).toBeGreaterThanOrEqual(1);
      expect(epochs.length).toBeLessThan(20);
      expect((await store.artifacts(run!.id)).map((a) => a.name)).toContain('checkpoint.ckpt');
    } finally {
      await store.close();
    }
  });

  it('records into --store under --experiment and --run-name, and not at all with --no-track', async () => {
    const path = join(tmp, 'own-store', 'runs.db');
    const args = ['train', '--epochs', '1', '--train-limit', '300', '--out', join(tmp, 'track.pt')];
    const tracked = await cli([...args, '--store', path, '--experiment', 'exp-a', '--run-name', 'first']);
    expect(tracked.code, tracked.stderr).toBe(0);
    const untracked = await cli([...args, '--store', path, '--no-track']);
    expect(untracked.code, untracked.stderr).toBe(0);
    expect(untracked.stdout).not.toMatch(/recorded in/);
    const store = await RunStore.open(path);
    try {
      const runs = await store.listRuns();
      expect(runs.map((r) => [r.experiment, r.name, r.status])).toEqual([['exp-a', 'first', 'finished']]);
    } finally {
      await store.close();
    }
    expectInputError(await cli([...args, '--store', join(tmp, 'track.pt')]), /track\.pt' is not a torchlet run store: it is not an SQLite database/);
  });

  it('reads a YAML config and lets flags override it; --val-split chooses the best epoch by validation', async () => {
    const config = join(tmp, 'run.yaml');
    writeFileSync(config, 'model: light\nepochs: 3\nbatchSize: 64\ntrainLimit: 1500\nvalSplit: 500\n');
    const r = await cli(['train', '--config', config, '--epochs', '1', '--out', join(tmp, 'cfg.pt')], { TORCHLET_LOG_DIR: join(tmp, 'logs2') });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/training light \(4738 parameters\)/);
    expect(epochLines(r.stdout)).toHaveLength(1);
    expect(r.stdout).toMatch(/\| val loss \d\.\d+ acc \d+\.\d+%/);
    expect(r.stdout).toMatch(/best val accuracy/);
  });

  it('runs a project recipe from YAML: Adam, a step schedule, early stopping, [-1, 1] inputs, rotate-translate augmentation', async () => {
    const config = join(tmp, 'recipe.yaml');
    writeFileSync(
      config,
      [
        'description: a small version of the early-stopping project',
        'model: super_light',
        'epochs: 4',
        'trainLimit: 1200',
        'valSplit: 0.2',
        'batchSize: 64',
        'optimizer: { type: adam }',
        'lr: 0.001',
        'weightDecay: 0.00001',
        'scheduler: { type: step, stepSize: 1, gamma: 0.5 }',
        'earlyStopping: { metric: valAccuracy, mode: min, patience: 1 }',
        'normalize: minus1-1',
        'augment: rotate-translate',
      ].join('\n'),
    );
    const logs = join(tmp, 'logs-recipe');
    const r = await cli(['train', '--config', config, '--out', join(tmp, 'recipe.pt')], { TORCHLET_LOG_DIR: logs });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/aug=true, 4 epochs, adam \+ step, early stopping \(patience 1\)/);
    // 'min' on an accuracy: nothing after epoch 1 improves, so patience 1 stops after epoch 2.
    expect(epochLines(r.stdout)).toHaveLength(2);
    expect(r.stdout).toMatch(/early stopping ended the run after epoch 2/);
    expect(r.stdout).toMatch(/\| lr 1\.000e-3 \|/);
    expect(r.stdout).toMatch(/\| lr 5\.000e-4 \|/);
    const header = JSON.parse(readFileSync(join(logs, readdirSync(logs).find((f) => f.endsWith('.jsonl'))!), 'utf8').split('\n')[0]!) as { recipe: Record<string, unknown> };
    expect(header.recipe).toMatchObject({ optimizer: { type: 'adam' }, normalize: 'minus1-1', augment: { degrees: 10, translate: [0.1, 0.1] } });
  });

  it('rejects bad recipe options with exit code 2, naming them', async () => {
    const env = { TORCHLET_LOG_DIR: join(tmp, 'logs5') };
    expectInputError(await cli(['train', '--optimizer', 'adam', '--nesterov', '--train-limit', '100'], env), /optimizer.nesterov does not apply to adam/);
    const r = await cli(['train', '--scheduler', 'multistep', '--milestones', '5,x'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--milestones must be comma-separated integers, got '5,x'/);
    expectInputError(await cli(['train', '--monitor', 'valLoss', '--train-limit', '100'], env), /early stopping needs --patience/);
    expectInputError(await cli(['train', '--patience', '2', '--train-limit', '100'], env), /earlyStopping watches valLoss, but there is no validation set/);
    const bad = join(tmp, 'bad-recipe.yaml');
    writeFileSync(bad, 'scheduler: { type: step, stepsize: 3 }\n');
    expectInputError(await cli(['train', '--config', bad], env), /config '.*bad-recipe\.yaml' is invalid: scheduler/);
    writeFileSync(bad, 'optimizer: lamb\n');
    expectInputError(await cli(['train', '--config', bad], env), /is invalid: optimizer/);
  });

  // Debian's dataset-fashion-mnist is installed by .ci/run; a machine without it (and without
  // a network to download from) has nothing to train on.
  it.skipIf(missing(existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'), 'Debian\'s dataset-fashion-mnist'))('trains on Fashion-MNIST from Debian\'s dataset-fashion-mnist', async () => {
    const r = await cli(['train', '--dataset', 'fashion-mnist', '--model', 'lightest', '--epochs', '1', '--train-limit', '3000', '--out', join(tmp, 'fashion.pt')], {
      TORCHLET_LOG_DIR: join(tmp, 'logs3'),
    });
    expect(r.code, r.stderr).toBe(0);
    const acc = Number(/test loss \d\.\d+ acc (\d+\.\d+)%/.exec(r.stdout)?.[1]);
    expect(acc).toBeGreaterThan(40);
  });

  it('rejects bad flags, unknown models and bad configs with exit code 2', async () => {
    const env = { TORCHLET_LOG_DIR: join(tmp, 'logs4') };
    let r = await cli(['train', '--model', 'resnet'], env);
    expectNoCrash(r);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/argument 'resnet' is invalid\. Allowed choices are light, lightest, super_light/);
    r = await cli(['train', '--epochs', '0'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--epochs must be a positive integer, got '0'/);
    r = await cli(['train', '--lr', 'fast'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--lr must be a positive number, got 'fast'/);
    r = await cli(['train', '--unknown-flag'], env);
    expect(r.code).toBe(2);
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(bad, 'model: super_light\nepoch: 3\n');
    expectInputError(await cli(['train', '--config', bad], env), /config '.*bad\.yaml' is invalid: .*epoch/);
    writeFileSync(bad, 'model: [unclosed\n');
    expectInputError(await cli(['train', '--config', bad], env), /is not valid YAML/);
    expectInputError(await cli(['train', '--config', join(tmp, 'missing.json')], env), /cannot read config/);
    expectInputError(await cli(['train', '--device', 'cuda:7', '--train-limit', '100'], env), /bad --device: device 'cuda:7'/);
    expectInputError(await cli(['train', '--resume', join(tmp, 'nothing.ckpt'), '--train-limit', '100'], env), /cannot resume: checkpoint .* does not exist/);
  });

  it('documents every option in --help', async () => {
    const r = await cli(['train', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--optimizer', '--momentum', '--nesterov', '--scheduler', '--lr-interval', '--step-size', '--gamma', '--milestones', '--t-max', '--eta-min', '--lr-patience', '--lr-factor', '--patience', '--monitor', '--min-delta', '--no-restore-best', '--normalize', '--augment', '--model', '--aug', '--epochs', '--batch-size', '--lr', '--max-lr', '--weight-decay', '--seed', '--device', '--threads', '--data-dir', '--dataset', '--out', '--val-split', '--resume', '--config']) {
      expect(r.stdout).toContain(flag);
    }
  });
});
