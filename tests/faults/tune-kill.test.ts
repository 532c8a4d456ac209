// kill -9 one of two `torchlet tune` workers mid-trial: the other worker finishes the
// study, the killed trial is failed by heartbeat and retried with the same parameters,
// and no trial is lost or counted twice.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/store.js';
import { loadStudy, SqlTuneStorage } from '../../src/tune/index.js';
import { expectNoCrash, finished, MNIST_DIR, spawnCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'torchlet-tune-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tune workers under kill -9', () => {
  it('the surviving worker fails the dead trial by heartbeat, retries it, and finishes the study', async () => {
    const space = join(dir, 'space.yaml');
    const store = join(dir, 'runs.db');
    writeFileSync(
      space,
      [
        'study: kill',
        'valSplit: 500',
        'trainLimit: 2500',
        'trials: 4',
        'sampler: { type: random, seed: 3 }',
        'pruner: { type: none }',
        'fixed: { model: super_light, epochs: 3, batchSize: 64 }',
        'params:',
        '  maxLr: { low: 0.005, high: 0.02, log: true }',
        '',
      ].join('\n'),
    );
    const args = ['tune', '--space', space, '--store', store, '--data-dir', MNIST_DIR, '--threads', '1', '--heartbeat', '1'];
    const victim = spawnCli(args);
    const victimDone = finished(victim);
    // Wait until the victim has a trial under way (an epoch reported), then kill it.
    const storage = new SqlTuneStorage(await openStore(store));
    let killedTrial: number | undefined;
    try {
      for (let i = 0; i < 1200 && killedTrial === undefined; i++) {
        await new Promise((r) => setTimeout(r, 250));
        const study = await storage.getStudy('kill');
        if (!study) continue;
        const running = (await storage.getTrials(study.id, ['running'])).find((t) => t.worker?.includes(`:${victim.pid}:`) && t.intermediate.size > 0);
        if (running) killedTrial = running.number;
      }
      expect(killedTrial, 'the victim never got a trial under way').toBeDefined();
      const survivor = spawnCli(args);
      victim.kill('SIGKILL');
      expect((await victimDone).signal).toBe('SIGKILL');
      const r = await finished(survivor);
      expectNoCrash(r);
      expect(r.code, r.stderr).toBe(0);

      const study = await loadStudy({ name: 'kill', store: storage });
      const trials = await study.trials;
      const failed = trials.filter((t) => t.state === 'failed');
      expect(failed.map((t) => t.number)).toEqual([killedTrial]);
      expect(failed[0]!.systemAttrs.fail_reason).toBe('no heartbeat');
      const retry = trials.filter((t) => t.systemAttrs.failed_trial === killedTrial);
      expect(retry).toHaveLength(1);
      expect(retry[0]!.state).toBe('complete');
      expect(retry[0]!.params).toEqual(failed[0]!.params);
      // Four finished trials, each counted once, and every number used once.
      expect(trials.filter((t) => t.state === 'complete')).toHaveLength(4);
      expect(trials.map((t) => t.number)).toEqual([...Array(trials.length).keys()]);
      expect(trials).toHaveLength(5);
      expect(r.stdout).toMatch(/best trial #\d+: test accuracy \d+\.\d+%/);
    } finally {
      await storage.close();
    }
  });
});
