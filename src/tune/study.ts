// Studies and trials in Optuna's shape: createStudy, study.optimize(objective), and in the
// objective trial.suggestFloat/Int/Categorical, trial.report and trial.shouldPrune.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  categoricalDistribution,
  contains,
  floatDistribution,
  intDistribution,
  sameDistribution,
  SearchSpaceError,
  toExternal,
  toInternal,
  type Choice,
  type Distribution,
  type ParamValue,
} from './distributions.js';
import { MemoryStorage } from './memory-storage.js';
import { MedianPruner, type Pruner } from './pruners.js';
import { TPESampler } from './samplers/tpe.js';
import type { Sampler, SamplerContext } from './samplers/sampler.js';
import { retryAttrs, type TuneStorage } from './storage.js';
import { type Direction, type FrozenTrial, type JsonValue, type StudyInfo } from './types.js';
import { key } from './at.js';

/** Throw from an objective to end the trial as pruned. */
export class TrialPruned extends Error {
  override name = 'TrialPruned';
  constructor(message = 'trial pruned') {
    super(message);
  }
}

export type Objective = (trial: Trial) => Promise<number> | number;

export interface CreateStudyOptions {
  name?: string;
  direction?: Direction;
  sampler?: Sampler;
  pruner?: Pruner;
  /** Where trials live (default: this process's memory). */
  store?: TuneStorage;
  /** Join an existing study of this name instead of failing. */
  loadIfExists?: boolean;
}

export interface OptimizeOptions {
  /** Trials to run in this call (default: until timeout, or forever). */
  trials?: number;
  /** Seconds after which no new trial starts. */
  timeout?: number;
  /** Trials run at once by this call (default 1). */
  concurrency?: number;
  /** Errors that fail the trial but not the study: classes to catch, or true for all. */
  catch?: boolean | (abstract new (...args: never[]) => Error)[];
  /** Stop once the study (all workers together) holds this many trials that did not fail. */
  maxTrials?: number;
  /** Seconds between heartbeats of running trials; enables failing and retrying stale trials. */
  heartbeatInterval?: number;
  /** Seconds without a heartbeat after which a running trial is failed (default 2 x heartbeatInterval). */
  gracePeriod?: number;
  /** Times a stale trial is retried as a waiting trial with the same parameters (default 1). */
  maxRetry?: number;
  /** Starts no new trial once aborted. */
  signal?: AbortSignal;
  /** Called after every trial this call finishes. */
  onTrialEnd?: (trial: FrozenTrial) => void | Promise<void>;
  /** Names this worker in the store (default host:pid:random). */
  worker?: string;
}

export class Trial {
  private readonly frozen: FrozenTrial;
  private readonly study: Study;
  private readonly ctx: SamplerContext;
  private readonly relative: Record<string, number>;
  private readonly relativeSpace: Record<string, Distribution>;
  private pending: Promise<void> = Promise.resolve();
  private writeError: unknown;

  /** @internal */
  constructor(study: Study, frozen: FrozenTrial, ctx: SamplerContext, relativeSpace: Record<string, Distribution>, relative: Record<string, number>) {
    this.study = study;
    this.frozen = frozen;
    this.ctx = ctx;
    this.relativeSpace = relativeSpace;
    this.relative = relative;
  }

  get number(): number {
    return this.frozen.number;
  }

  get id(): number {
    return this.frozen.id;
  }

  get params(): Record<string, ParamValue> {
    return { ...this.frozen.params };
  }

  get distributions(): Record<string, Distribution> {
    return { ...this.frozen.distributions };
  }

  get userAttrs(): Record<string, JsonValue> {
    return { ...this.frozen.userAttrs };
  }

  get systemAttrs(): Record<string, JsonValue> {
    return { ...this.frozen.systemAttrs };
  }

  /** A float in [low, high]; `log` samples in log scale, `step` on the grid low + k * step. */
  suggestFloat(name: string, low: number, high: number, options: { log?: boolean; step?: number | null } = {}): number {
    return this.suggest(name, floatDistribution(name, low, high, options)) as number;
  }

  /** An integer in [low, high]. */
  suggestInt(name: string, low: number, high: number, options: { log?: boolean; step?: number } = {}): number {
    return this.suggest(name, intDistribution(name, low, high, options)) as number;
  }

  suggestCategorical<T extends Choice>(name: string, choices: readonly T[]): T {
    return this.suggest(name, categoricalDistribution(name, choices)) as T;
  }

  private suggest(name: string, d: Distribution): ParamValue {
    if (typeof name !== 'string' || name === '') throw new SearchSpaceError('a parameter needs a non-empty name');
    const known = this.frozen.distributions[name];
    if (known) {
      if (!sameDistribution(known, d)) throw new SearchSpaceError(`parameter '${name}' was already suggested in this trial with another distribution`);
      return key(this.frozen.params, name);
    }
    let internal: number;
    const fixed = this.frozen.systemAttrs.fixed_params;
    const fixedValue = fixed !== null && typeof fixed === 'object' && !Array.isArray(fixed) ? fixed[name] : undefined;
    if (fixedValue !== undefined && !(typeof fixedValue === 'object' && fixedValue !== null)) {
      internal = toInternal(d, fixedValue);
      if (!contains(d, internal)) throw new SearchSpaceError(`parameter '${name}': the enqueued value ${JSON.stringify(fixedValue)} is outside its distribution`);
    } else if (name in this.relative && this.relativeSpace[name] && sameDistribution(this.relativeSpace[name], d)) {
      internal = key(this.relative, name);
    } else {
      internal = this.study.sampler.sampleIndependent(this.ctx, this.frozen, name, d);
    }
    const value = toExternal(d, internal);
    // Store the value as the objective sees it (0.3, not 0.30000000000000004 off the step grid).
    if (d.type !== 'categorical') internal = toInternal(d, value);
    this.frozen.internalParams[name] = internal;
    this.frozen.distributions[name] = d;
    this.frozen.params[name] = value;
    this.write(() => this.study.store.setParam(this.frozen.id, name, internal, d));
    return value;
  }

  private write(op: () => Promise<void>): void {
    this.pending = this.pending.then(op).catch((err: unknown) => {
      this.writeError ??= err;
    });
  }

  /** @internal Waits for every write so far; throws the first that failed. */
  async flush(): Promise<void> {
    await this.pending;
    if (this.writeError !== undefined) throw this.writeError;
  }

  /** Records an intermediate value (e.g. validation accuracy after an epoch). */
  async report(value: number, step: number): Promise<void> {
    if (typeof value !== 'number') throw new TypeError(`report: value must be a number, got ${JSON.stringify(value)}`);
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`report: step must be a non-negative integer, got ${step}`);
    // Optuna keeps the first value reported for a step.
    if (this.frozen.intermediate.has(step)) return;
    this.frozen.intermediate.set(step, value);
    this.write(() => this.study.store.setIntermediate(this.frozen.id, step, value));
    await this.flush();
  }

  /** Asks the study's pruner whether to stop this trial now (throw TrialPruned if so). */
  async shouldPrune(): Promise<boolean> {
    await this.flush();
    const trials = await this.study.store.getTrials(this.study.id);
    const decision = this.study.pruner.prune({ direction: this.study.direction, trials }, this.frozen);
    for (const [key, value] of Object.entries(decision.systemAttrs ?? {})) this.setSystemAttr(key, value);
    await this.flush();
    return decision.prune;
  }

  setUserAttr(key: string, value: JsonValue): void {
    this.frozen.userAttrs[key] = value;
    this.write(() => this.study.store.setTrialAttr(this.frozen.id, 'user', key, value));
  }

  /** @internal */
  setSystemAttr(key: string, value: JsonValue): void {
    this.frozen.systemAttrs[key] = value;
    this.write(() => this.study.store.setTrialAttr(this.frozen.id, 'system', key, value));
  }

  /** @internal The last reported value, for a pruned trial's value. */
  lastValue(): number | null {
    let step = -1;
    for (const s of this.frozen.intermediate.keys()) step = Math.max(step, s);
    return this.frozen.intermediate.get(step) ?? null;
  }
}

function matches(err: unknown, catchOpt: OptimizeOptions['catch']): boolean {
  if (catchOpt === true) return true;
  if (!Array.isArray(catchOpt)) return false;
  return catchOpt.some((cls) => err instanceof cls);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class Study {
  readonly id: number;
  readonly name: string;
  readonly direction: Direction;
  readonly sampler: Sampler;
  readonly pruner: Pruner;
  readonly store: TuneStorage;

  /** @internal Use createStudy or loadStudy. */
  constructor(info: StudyInfo, sampler: Sampler, pruner: Pruner, store: TuneStorage) {
    this.id = info.id;
    this.name = info.name;
    this.direction = info.direction;
    this.sampler = sampler;
    this.pruner = pruner;
    this.store = store;
  }

  /** Every trial, in number order. */
  get trials(): Promise<FrozenTrial[]> {
    return this.store.getTrials(this.id);
  }

  /** The complete trial with the best value (undefined while there is none). */
  get bestTrial(): Promise<FrozenTrial | undefined> {
    return this.store.getTrials(this.id, ['complete']).then((ts) => bestOf(ts, this.direction));
  }

  /** Queues a trial whose parameters are fixed to `params`; the next worker to start a trial runs it. */
  async enqueueTrial(params: Record<string, ParamValue>, userAttrs: Record<string, JsonValue> = {}): Promise<FrozenTrial> {
    const t = await this.store.enqueueTrial(this.id, { fixed_params: { ...params } });
    for (const [k, v] of Object.entries(userAttrs)) await this.store.setTrialAttr(t.id, 'user', k, v);
    return t;
  }

  async setUserAttr(key: string, value: JsonValue): Promise<void> {
    await this.store.setStudyUserAttr(this.id, key, value);
  }

  /** Runs trials of `objective` until a limit is reached. Rejects with the first error not covered by `catch`. */
  async optimize(objective: Objective, options: OptimizeOptions = {}): Promise<void> {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    if (options.trials !== undefined && (!Number.isInteger(options.trials) || options.trials < 0)) throw new RangeError(`trials must be a non-negative integer, got ${options.trials}`);
    if (options.timeout !== undefined && !(options.timeout > 0)) throw new RangeError(`timeout must be a positive number of seconds, got ${options.timeout}`);
    const deadline = options.timeout !== undefined ? Date.now() + options.timeout * 1000 : Infinity;
    const worker = options.worker ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    let started = 0;
    let stop = false;
    let failure: { err: unknown } | undefined;

    const loop = async (): Promise<void> => {
      while (!stop && failure === undefined) {
        if (options.trials !== undefined && started >= options.trials) return;
        if (Date.now() >= deadline || options.signal?.aborted) return;
        started++;
        const outcome = await this.runTrial(objective, options, worker).catch((err: unknown) => ({ err }));
        if (outcome === 'stop') stop = true;
        else if (outcome === 'wait') {
          // The study is full but other workers' trials still run: one may die and need a retry.
          started--;
          await new Promise((r) => setTimeout(r, (options.heartbeatInterval ?? 1) * 1000));
        } else if (outcome !== 'done') failure ??= outcome;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    if (failure !== undefined) throw failure.err;
  }

  private async runTrial(objective: Objective, options: OptimizeOptions, worker: string): Promise<'done' | 'stop' | 'wait'> {
    const heartbeat = options.heartbeatInterval;
    if (heartbeat !== undefined) {
      await this.store.failStaleTrials(this.id, options.gracePeriod ?? 2 * heartbeat, options.maxRetry ?? 1);
    }
    if (this.sampler.isExhausted?.({ direction: this.direction, trials: await this.store.getTrials(this.id) })) return 'stop';
    const frozen = await this.store.startTrial(this.id, { worker, ...(options.maxTrials !== undefined && { maxTrials: options.maxTrials }) });
    if (!frozen) {
      if (heartbeat === undefined) return 'stop';
      const running = await this.store.getTrials(this.id, ['running', 'waiting']);
      return running.length > 0 ? 'wait' : 'stop';
    }
    const timer = heartbeat !== undefined ? setInterval(() => void this.store.heartbeat(frozen.id).catch(() => undefined), heartbeat * 1000) : undefined;
    timer?.unref();
    try {
      const ctx: SamplerContext = { direction: this.direction, trials: await this.store.getTrials(this.id) };
      for (const [k, v] of Object.entries(this.sampler.beforeTrial?.(ctx, frozen) ?? {})) {
        frozen.systemAttrs[k] = v;
        await this.store.setTrialAttr(frozen.id, 'system', k, v);
      }
      const space = this.sampler.inferRelativeSearchSpace?.(ctx, frozen) ?? {};
      const relative = Object.keys(space).length > 0 ? (this.sampler.sampleRelative?.(ctx, frozen, space) ?? {}) : {};
      const trial = new Trial(this, frozen, ctx, space, relative);
      let state: 'complete' | 'pruned' | 'failed';
      let value: number | null = null;
      let error: unknown;
      try {
        const result = await objective(trial);
        if (typeof result !== 'number' || !Number.isFinite(result)) throw new TypeError(`the objective returned ${String(result)}, not a finite number`);
        state = 'complete';
        value = result;
      } catch (err) {
        if (err instanceof TrialPruned) {
          state = 'pruned';
          value = trial.lastValue();
          if (value !== null && !Number.isFinite(value)) value = null;
        } else {
          state = 'failed';
          error = err;
          trial.setSystemAttr('fail_reason', message(err));
        }
      }
      await trial.flush();
      const owned = await this.store.finishTrial(frozen.id, state, value);
      if (!owned) process.emitWarning(`trial ${frozen.number} was failed by another worker (no heartbeat for too long); its result is dropped`);
      await options.onTrialEnd?.(await this.store.getTrial(frozen.id));
      if (state === 'failed' && !matches(error, options.catch)) throw error;
      return 'done';
    } finally {
      if (timer) clearInterval(timer);
    }
  }

  /** Fails this worker's running trial `trialId` now and queues its retry (e.g. on Ctrl-C). */
  async abandonTrial(trialId: number): Promise<void> {
    if (await this.store.finishTrial(trialId, 'failed', null)) {
      await this.store.setTrialAttr(trialId, 'system', 'fail_reason', 'interrupted');
      await this.store.enqueueTrial(this.id, retryAttrs(await this.store.getTrial(trialId)));
    }
  }
}

export function bestOf(trials: readonly FrozenTrial[], direction: Direction): FrozenTrial | undefined {
  let best: { trial: FrozenTrial; value: number } | undefined;
  for (const t of trials) {
    if (t.state !== 'complete' || t.value === null) continue;
    if (!best || (direction === 'maximize' ? t.value > best.value : t.value < best.value)) best = { trial: t, value: t.value };
  }
  return best?.trial;
}

/** Creates (or with loadIfExists joins) a study. Defaults: TPE sampler, median pruner, in-memory store, minimize. */
export async function createStudy(options: CreateStudyOptions = {}): Promise<Study> {
  const store = options.store ?? new MemoryStorage();
  const direction = options.direction ?? 'minimize';
  if (direction !== 'minimize' && direction !== 'maximize') throw new RangeError(`direction must be 'minimize' or 'maximize', got ${String(direction)}`);
  const name = options.name ?? `study-${randomUUID()}`;
  const info = await store.createStudy(name, direction, { loadIfExists: options.loadIfExists ?? false });
  return new Study(info, options.sampler ?? new TPESampler(), options.pruner ?? new MedianPruner(), store);
}

/** Opens an existing study. */
export async function loadStudy(options: { name: string; store: TuneStorage; sampler?: Sampler; pruner?: Pruner }): Promise<Study> {
  const info = await options.store.getStudy(options.name);
  if (!info) throw new Error(`no study named '${options.name}'`);
  return new Study(info, options.sampler ?? new TPESampler(), options.pruner ?? new MedianPruner(), options.store);
}
