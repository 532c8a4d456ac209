// Saving onto a full disk (a 256 KiB tmpfs) and past a file-size limit (ulimit -f):
// every save fails with an error that names the problem, leaves the previous weights or
// checkpoint byte-for-byte intact and loadable, and leaves no temporary file behind.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, loadMnist, models, native, train, type MnistData } from '../../src/index.js';
import { MNIST_DIR, ROOT, cli, cliEnv, escapeRegExp, expectNoCrash, finished, sha256 } from '../helpers/cli.js';
import { missing } from '../helpers/requires.js';

const TMPFS_BYTES = 256 * 1024;
const PAGE = 4096;

const base = mkdtempSync(join(tmpdir(), 'torchlet-disk-full-'));
const mnt = join(base, 'tmpfs');
mkdirSync(mnt);
// Mounting needs root (CAP_SYS_ADMIN); where that is missing the tmpfs cases skip and
// the ulimit ones still run.
const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', mnt], { encoding: 'utf8' });
const tmpfs = mount.status === 0;
if (!tmpfs) console.warn(`disk-full: cannot mount a tmpfs (${(mount.stderr || mount.error?.message || '').trim()}); skipping the full-disk cases`);

let data: MnistData;
beforeAll(async () => {
  data = await loadMnist({ dataDir: MNIST_DIR, trainLimit: 1000, testLimit: 500 });
});
afterAll(() => {
  data?.train.dispose();
  data?.test.dispose();
  if (tmpfs) spawnSync('umount', [mnt]);
  rmSync(base, { recursive: true, force: true });
});

const free = (dir: string): number => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Fills the filesystem holding `dir`, then frees about `leave` bytes (whole pages). */
function fill(dir: string, leave = 0): void {
  const filler = join(dir, 'filler');
  const fd = openSync(filler, 'a');
  const chunk = Buffer.alloc(PAGE, 0xaa);
  let size = 0;
  try {
    for (;;) size += writeSync(fd, chunk);
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  }
  ftruncateSync(fd, Math.max(0, size - Math.ceil(leave / PAGE) * PAGE));
  closeSync(fd);
}

function emptyDisk(): void {
  for (const f of readdirSync(mnt)) rmSync(join(mnt, f), { recursive: true, force: true });
}

const tempFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f.includes('.tmp-'));

/** A trainer's checkpoint must load (it is the resume path that reads it). */
function checkpointLoads(path: string): string {
  const model = new Model(models.super_light);
  const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'adamw', lr: 1e-3 } });
  try {
    return trainer.loadState(path);
  } finally {
    trainer.dispose();
    model.dispose();
  }
}

describe.skipIf(missing(tmpfs, 'a mountable tmpfs'))('a full disk (256 KiB tmpfs)', () => {
  it('Model.save and saveState fail with ENOSPC and keep the previous files intact', () => {
    emptyDisk();
    const weights = join(mnt, 'w.pt');
    const ckpt = join(mnt, 'w.ckpt');
    const old = new Model(models.super_light, { seed: 1 });
    old.save(weights);
    const oldTrainer = new (native().Trainer)(old.handle, { optimizer: { type: 'adamw', lr: 1e-3 } });
    oldTrainer.saveState(ckpt, '{"old":true}');
    oldTrainer.dispose();
    old.dispose();
    const before = { weights: sha256(weights), ckpt: sha256(ckpt) };
    fill(mnt);
    expect(free(mnt)).toBeLessThan(PAGE);

    const model = new Model(models.super_light, { seed: 2 });
    expect(() => model.save(weights)).toThrow(
      new RegExp(`^cannot write '${escapeRegExp(weights)}': No space left on device \\(the previous file, if any, is unchanged\\)$`),
    );
    const trainer = new (native().Trainer)(model.handle, { optimizer: { type: 'adamw', lr: 1e-3 } });
    expect(() => trainer.saveState(ckpt, '{"old":false}')).toThrow(/^cannot write '.*w\.ckpt': No space left on device \(the previous file, if any, is unchanged\)$/);
    trainer.dispose();
    // A new file fails the same way and leaves nothing behind.
    expect(() => model.save(join(mnt, 'new.pt'))).toThrow(/No space left on device/);
    model.dispose();

    expect(sha256(weights)).toBe(before.weights);
    expect(sha256(ckpt)).toBe(before.ckpt);
    Model.fromFile(models.super_light, weights).dispose();
    expect(checkpointLoads(ckpt)).toBe('{"old":true}');
    expect(tempFiles(mnt)).toEqual([]);
    expect(existsSync(join(mnt, 'new.pt'))).toBe(false);
  });

  it('the training loop: a failed best-weights save stops training with the error; the old files survive', async () => {
    emptyDisk();
    const best = join(mnt, 'x.pt');
    const ckpt = join(mnt, 'x.ckpt');
    // An earlier run's files.
    const earlier = new Model(models.super_light, { seed: 3 });
    await train(earlier, data, { epochs: 1, seed: 3, skipTrainEval: true, bestPath: best, checkpointPath: ckpt });
    earlier.dispose();
    const before = { best: sha256(best), ckpt: sha256(ckpt) };
    fill(mnt);

    // Epoch 1 of a new run is always its best so far, so it saves the weights first.
    const model = new Model(models.super_light, { seed: 4 });
    await expect(train(model, data, { epochs: 2, seed: 4, skipTrainEval: true, bestPath: best, checkpointPath: ckpt })).rejects.toThrow(
      /^cannot write '.*x\.pt': No space left on device \(the previous file, if any, is unchanged\)$/,
    );
    model.dispose();
    expect(sha256(best)).toBe(before.best);
    expect(sha256(ckpt)).toBe(before.ckpt);
    Model.fromFile(models.super_light, best).dispose();
    expect(tempFiles(mnt)).toEqual([]);
  });

  it('the training loop: a failed checkpoint save keeps the previous checkpoint, which still resumes', async () => {
    emptyDisk();
    const best = join(mnt, 'x.pt');
    const ckpt = join(mnt, 'x.ckpt');
    const earlier = new Model(models.super_light, { seed: 5 });
    const stopAfterOne = (r: { epoch: number }): void => {
      if (r.epoch === 1) throw new Error('stopped after one epoch');
    };
    await expect(
      train(earlier, data, { epochs: 2, seed: 5, skipTrainEval: true, bestPath: best, checkpointPath: ckpt, onEpoch: stopAfterOne }),
    ).rejects.toThrow('stopped after one epoch');
    earlier.dispose();
    const before = sha256(ckpt);
    // Room for a new .pt beside the old one, not for a new .ckpt beside the old one.
    fill(mnt, 64 * 1024);

    const model = new Model(models.super_light, { seed: 6 });
    await expect(train(model, data, { epochs: 2, seed: 6, skipTrainEval: true, bestPath: best, checkpointPath: ckpt })).rejects.toThrow(
      /^cannot write '.*x\.ckpt': No space left on device \(the previous file, if any, is unchanged\)$/,
    );
    model.dispose();
    // The weights of the new run's first epoch did fit, completely.
    Model.fromFile(models.super_light, best).dispose();
    expect(sha256(ckpt)).toBe(before);
    expect(tempFiles(mnt)).toEqual([]);

    // Once there is room again, the earlier run resumes from its intact checkpoint.
    rmSync(join(mnt, 'filler'));
    const resumed = new Model(models.super_light);
    const result = await train(resumed, data, { epochs: 2, seed: 5, skipTrainEval: true, bestPath: best, checkpointPath: ckpt, resume: ckpt });
    expect(result.history.map((r) => r.epoch)).toEqual([1, 2]);
    resumed.dispose();
  });

  it('the CLI exits 1 with the error, no crash', async () => {
    emptyDisk();
    fill(mnt);
    const out = join(mnt, 'cli.pt');
    const r = await cli(['train', '--epochs', '1', '--train-limit', '500', '--data-dir', MNIST_DIR, '--out', out, '--threads', '1']);
    expectNoCrash(r);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^torchlet: cannot write '${escapeRegExp(out)}': No space left on device \\(the previous file, if any, is unchanged\\)$`, 'm'));
    expect(tempFiles(mnt)).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });
});

describe('a file-size limit (ulimit -f, SIGXFSZ ignored)', () => {
  it('the CLI saves the 30 KB weights, then fails on the 100 KB checkpoint with EFBIG, exit 1', async () => {
    const dir = join(base, 'ulimit');
    mkdirSync(dir);
    const out = join(dir, 'x.pt');
    // 64 blocks of 1 KiB: the .pt fits, the .ckpt (weights + AdamW state) does not.
    // SIGXFSZ is ignored so that write() returns EFBIG instead of killing the process.
    const script = `trap '' XFSZ; ulimit -f 64; exec "$0" "$@"`;
    const args = ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'train', '--epochs', '1', '--train-limit', '500', '--data-dir', MNIST_DIR, '--out', out, '--threads', '1'];
    const r = await finished(spawn('bash', ['-c', script, process.execPath, ...args], { cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
    expectNoCrash(r);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^torchlet: cannot write '.*x\.ckpt': File too large \(the previous file, if any, is unchanged\)$/m);
    Model.fromFile(models.super_light, out).dispose();
    expect(existsSync(join(dir, 'x.ckpt'))).toBe(false);
    expect(tempFiles(dir)).toEqual([]);
  });
});
