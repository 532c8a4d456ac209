// A worker: claims queued runs from a store, one at a time, and trains them. It holds a
// lease on its run and renews it with a heartbeat (which also carries step progress and
// notices cancellation); every epoch's checkpoint goes into the store, so a run whose
// worker died is requeued when its lease goes stale and the next worker resumes it, to
// the same weights, bit for bit, as an uninterrupted run.
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareTraining } from '../config.js';
import { getThreads, setThreads } from '../runtime.js';
import { train, type EpochRecord, type RunRecorder } from '../train.js';
import { RunLog } from '../training-log.js';
import { recordEvaluation } from '../store/report.js';
import { LeaseLostError, isTransient, type Run, type RunProgress, type RunStore } from '../store/store.js';
import { checkJobConfig, defaultDataRoot } from './config.js';
import { models } from '../zoo/index.js';

export interface WorkerOptions {
  /** Unique among workers (default host-pid). */
  id?: string;
  /** How long a lease lasts without a heartbeat before the run is requeued (ms). */
  leaseMs?: number;
  heartbeatMs?: number;
  /** How often an idle worker looks for queued runs (ms). */
  pollMs?: number;
  /** The folder configs may name data under. */
  dataRoot?: string;
  /** Stop once the queue is empty. */
  untilEmpty?: boolean;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export type Outcome = 'finished' | 'failed' | 'cancelled' | 'lost';

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Retries `fn` while the database is unreachable (a restart), for up to `forMs`. */
async function persist<T>(fn: () => Promise<T>, forMs: number, log: (line: string) => void): Promise<T> {
  const deadline = Date.now() + forMs;
  for (let delay = 250; ; delay = Math.min(delay * 2, 4000)) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || Date.now() > deadline) throw err;
      log(`store unreachable (${err instanceof Error ? err.message : String(err)}); retrying`);
      await sleep(delay);
    }
  }
}

/** Claims and trains queued runs until `signal` aborts (or, with `untilEmpty`, the queue is empty). */
export async function runWorker(store: RunStore, options: WorkerOptions = {}): Promise<void> {
  const id = options.id ?? `${hostname()}-${process.pid}`;
  const log = options.log ?? (() => undefined);
  const pollMs = options.pollMs ?? 1000;
  log(`worker ${id} watching ${store.location}`);
  while (!options.signal?.aborted) {
    let run: Run | undefined;
    try {
      run = await store.claimRun(id, options.leaseMs ?? 30_000, undefined, getThreads());
    } catch (err) {
      if (!isTransient(err)) throw err;
      log(`store unreachable (${err instanceof Error ? err.message : String(err)}); retrying`);
      await sleep(pollMs, options.signal);
      continue;
    }
    if (run === undefined) {
      if (options.untilEmpty) return;
      await sleep(pollMs, options.signal);
      continue;
    }
    log(`run ${run.id} (${run.name}): claimed, attempt ${run.attempts}`);
    const outcome = await executeRun(store, run, { ...options, id });
    log(`run ${run.id} (${run.name}): ${outcome}`);
  }
}

/** Trains one claimed run to its end (or until it is cancelled or the lease is lost). */
export async function executeRun(store: RunStore, run: Run, options: WorkerOptions & { id: string }): Promise<Outcome> {
  const log = options.log ?? (() => undefined);
  const leaseMs = options.leaseMs ?? 30_000;
  const heartbeatMs = options.heartbeatMs ?? Math.max(250, Math.min(5000, leaseMs / 6));
  let stop: 'cancel' | 'lost' | undefined;
  let progress: RunProgress | undefined;
  const beating = new AbortController();
  // The heartbeat runs while the epoch trains on libtorch's threads.
  const heart = (async () => {
    while (!beating.signal.aborted) {
      await sleep(heartbeatMs, beating.signal);
      if (beating.signal.aborted) break;
      try {
        const state = await store.heartbeat(run.id, options.id, leaseMs, progress);
        if (state !== 'ok') stop ??= state;
      } catch (err) {
        log(`heartbeat failed (${err instanceof Error ? err.message : String(err)}); retrying`);
      }
    }
  })();
  const scratch = mkdtempSync(join(tmpdir(), 'torchlet-job-'));
  const bestPath = join(scratch, 'best.pt');
  const checkpointPath = join(scratch, 'checkpoint.ckpt');
  try {
    const { config, recipe } = checkJobConfig(run.config, options.dataRoot ?? defaultDataRoot(), `run ${run.id}'s config`);
    if (config.threads !== undefined) setThreads(config.threads);
    const checkpoint = await store.artifact(run.id, 'checkpoint.ckpt');
    if (checkpoint !== undefined) {
      writeFileSync(checkpointPath, checkpoint.data);
      const best = await store.artifact(run.id, 'best.pt');
      if (best !== undefined) writeFileSync(bestPath, best.data);
      log(`run ${run.id}: resuming from its checkpoint`);
    }
    const prepared = await prepareTraining(config, recipe, `run ${run.id}'s config`, models);
    try {
      const { model, data } = prepared;
      const runLog = new RunLog(scratch, { model: config.model, aug: config.aug, params: model.numParams(), device: model.device, threads: getThreads(), recipe });
      const inner = store.recorder(run.id, options.id, leaseMs);
      const recorder: RunRecorder = {
        runId: run.id,
        // A database restart must not lose an epoch: retry until the lease would have run out.
        epoch: (record: EpochRecord, files) => persist(() => inner.epoch(record, files), leaseMs, log),
      };
      const result = await train(model, data, {
        ...recipe,
        aug: config.aug,
        bestPath,
        checkpointPath,
        ...(checkpoint !== undefined && { resume: checkpointPath }),
        recorder,
        onResume: (history) => history.forEach((r) => runLog.epoch(r)),
        onEpoch: (r) => runLog.epoch(r),
        onProgress: (epoch, p) => {
          progress = { epoch: epoch + 1, step: p.step, steps: p.steps, loss: p.loss, accuracy: p.accuracy, lr: p.lr };
          return stop === undefined;
        },
      });
      await persist(() => store.putArtifact(run.id, 'train.log', readFileSync(runLog.logPath)), leaseMs, log);
      await recordEvaluation(store, run.id, model, bestPath, data.test, config.dataset);
      await persist(() => store.finishRun(run.id, result, options.id), leaseMs, log);
      return 'finished';
    } finally {
      prepared.dispose();
    }
  } catch (err) {
    if (stop === 'lost' || err instanceof LeaseLostError) return 'lost';
    if (stop === 'cancel') {
      await persist(() => store.endRun(run.id, 'cancelled', null, options.id), leaseMs, log);
      return 'cancelled';
    }
    const text = err instanceof Error ? err.message : String(err);
    log(`run ${run.id} failed: ${text}`);
    await persist(() => store.endRun(run.id, 'failed', text, options.id), leaseMs, log).catch(() => undefined);
    return 'failed';
  } finally {
    beating.abort();
    await heart;
    rmSync(scratch, { recursive: true, force: true });
  }
}
