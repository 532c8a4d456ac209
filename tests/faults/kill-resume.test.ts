// SIGKILL a CLI training run at seeded-random points (mid-epoch and while a weights or
// checkpoint file is being written), resume it each time, and require the final weights
// to be byte-identical to an uninterrupted run's. After every kill the best weights on
// disk must load.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, watch, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, models } from '../../src/index.js';
import { MNIST_DIR, finished, sha256, spawnCli, type CliResult } from '../helpers/cli.js';
import { mulberry32 } from '../../src/split.js';

const EPOCHS = 4;
const SEED = 11;
const KILL_SEED = 2024;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'torchlet-kill-resume-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const trainArgs = (out: string): string[] => [
  'train',
  '--model', 'super_light',
  '--aug',
  '--epochs', String(EPOCHS),
  '--train-limit', '3000',
  '--seed', String(SEED),
  '--threads', '1',
  '--data-dir', MNIST_DIR,
  '--out', out,
];

/** The kill points are the same on every run: the split's seeded PRNG. */
const rng = mulberry32;

type Kill =
  /** `fraction` of an epoch after the attempt's `after`-th epoch line (0: after the start-up banner). */
  | { kind: 'mid-epoch'; after: number; fraction: number }
  /** The moment the attempt's `index`-th temporary file (x.pt.tmp-PID or x.ckpt.tmp-PID) appears. */
  | { kind: 'mid-save'; index: number };

interface Timeline {
  result: CliResult;
  /** ms from spawn to the banner and to each epoch line. */
  banner: number;
  epochs: number[];
  killedAt?: number;
}

/** Runs one attempt of the training, SIGKILLing it as `kill` says. */
async function attempt(args: string[], runDir: string, epochMs: number, kill?: Kill): Promise<Timeline> {
  const start = performance.now();
  const child = spawnCli(args);
  const done = finished(child);
  const timeline: Omit<Timeline, 'result'> = { banner: -1, epochs: [] };
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  const fire = (): void => {
    if (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')) timeline.killedAt = performance.now() - start;
  };
  const arm = (epochLines: number): void => {
    if (kill?.kind === 'mid-epoch' && epochLines === kill.after) timer = setTimeout(fire, kill.fraction * epochMs);
  };
  child.stderr?.on('data', (s: string) => {
    if (timeline.banner < 0 && s.includes('training super_light')) {
      timeline.banner = performance.now() - start;
      arm(0);
    }
  });
  child.stdout?.on('data', (s: string) => {
    const lines = s.match(/^epoch +\d+ \|/gm)?.length ?? 0;
    for (let i = 0; i < lines; i++) {
      timeline.epochs.push(performance.now() - start);
      arm(timeline.epochs.length);
    }
  });
  if (kill?.kind === 'mid-save') {
    let seen = 0;
    watcher = watch(runDir, (event, name) => {
      // A 'rename' event for a temporary file that exists is its creation: the save has begun.
      if (event === 'rename' && name && /\.(pt|ckpt)\.tmp-\d+$/.test(name) && existsSync(join(runDir, name)) && seen++ === kill.index) fire();
    });
  }
  const result = await done;
  clearTimeout(timer);
  watcher?.close();
  return { ...timeline, result };
}

describe('SIGKILL at random points, then --resume', () => {
  it('ends with weights byte-identical to an uninterrupted run, and the best .pt loads after every kill', async () => {
    // The uninterrupted reference, which also times an epoch on this machine.
    const refDir = join(tmp, 'reference');
    mkdirSync(refDir);
    const refOut = join(refDir, 'x.pt');
    const ref = await attempt(trainArgs(refOut), refDir, 0);
    expect(ref.result.code, ref.result.stderr).toBe(0);
    expect(ref.epochs).toHaveLength(EPOCHS);
    const epochMs = (ref.epochs.at(-1)! - ref.banner) / EPOCHS;
    const refFinal = ref.result.stdout.match(/^final test accuracy .*$/m)?.[0];
    expect(refFinal).toBeDefined();

    // The kill plan, drawn from a seeded RNG: two mid-epoch kills (one in the run's first
    // epoch, before any checkpoint exists, so it must start afresh) and two during saves.
    const random = rng(KILL_SEED);
    const plan: Kill[] = [
      { kind: 'mid-epoch', after: 0, fraction: 0.1 + 0.4 * random() },
      { kind: 'mid-save', index: Math.floor(random() * 3) },
      { kind: 'mid-epoch', after: random() < 0.5 ? 0 : 1, fraction: 0.1 + 0.8 * random() },
      { kind: 'mid-save', index: Math.floor(random() * 2) },
    ];

    const runDir = join(tmp, 'interrupted');
    mkdirSync(runDir);
    const out = join(runDir, 'x.pt');
    const ckpt = join(runDir, 'x.ckpt');
    const log: string[] = [];
    let kills = 0;
    let completed: Timeline | undefined;
    for (const kill of [...plan, undefined]) {
      const resuming = existsSync(ckpt);
      const t = await attempt([...trainArgs(out), ...(resuming ? ['--resume', ckpt] : [])], runDir, epochMs, kill);
      const what = kill ? JSON.stringify(kill) : 'none';
      if (t.killedAt === undefined) {
        // Not killed (the run ended first, or this is the final attempt): it must have succeeded.
        expect(t.result.code, `attempt (kill ${what}) failed:\n${t.result.stderr}`).toBe(0);
        log.push(`${resuming ? 'resume' : 'fresh '} kill=${what}: ran to completion (${t.epochs.length} epochs)`);
        completed = t;
        break;
      }
      kills++;
      expect(t.result.signal).toBe('SIGKILL');
      const leftovers = readdirSync(runDir).filter((f) => f.includes('.tmp-'));
      log.push(
        `${resuming ? 'resume' : 'fresh '} kill=${what}: killed at ${(t.killedAt / 1000).toFixed(2)}s after ${t.epochs.length} new epoch(s); ` +
          `on disk: ${['x.pt', 'x.ckpt'].filter((f) => existsSync(join(runDir, f))).join(', ') || 'nothing yet'}` +
          (leftovers.length > 0 ? `, partial temp file ${leftovers.join(', ')}` : ''),
      );
      // Whatever moment the kill hit, the best weights on disk are complete.
      if (existsSync(out)) Model.fromFile(models.super_light, out).dispose();
    }
    console.log(`kill/resume (epoch ~${(epochMs / 1000).toFixed(1)}s):\n  ${log.join('\n  ')}`);

    expect(kills).toBeGreaterThanOrEqual(3);
    expect(completed).toBeDefined();
    expect(sha256(out)).toBe(sha256(refOut));
    expect(completed!.result.stdout).toContain(refFinal!);
  });
});
