// Studies in this process's memory: the default when no store is given.
import type { Distribution } from './distributions.js';
import { toExternal } from './distributions.js';
import { retryAttrs, retryCount, type StartTrialOptions, type TuneStorage } from './storage.js';
import type { Direction, FrozenTrial, JsonValue, StudyInfo, TrialState } from './types.js';

function copy(t: FrozenTrial): FrozenTrial {
  return structuredClone(t);
}

export class MemoryStorage implements TuneStorage {
  private readonly studies: StudyInfo[] = [];
  private readonly trials: FrozenTrial[] = [];

  createStudy(name: string, direction: Direction, options: { loadIfExists?: boolean } = {}): Promise<StudyInfo> {
    const existing = this.studies.find((s) => s.name === name);
    if (existing) {
      if (!options.loadIfExists) return Promise.reject(new Error(`study '${name}' already exists (pass loadIfExists to join it)`));
      if (existing.direction !== direction) return Promise.reject(new Error(`study '${name}' exists with direction ${existing.direction}, not ${direction}`));
      return Promise.resolve(structuredClone(existing));
    }
    const study: StudyInfo = { id: this.studies.length + 1, name, direction, createdAt: new Date(), userAttrs: {} };
    this.studies.push(study);
    return Promise.resolve(structuredClone(study));
  }

  getStudy(name: string): Promise<StudyInfo | undefined> {
    const s = this.studies.find((x) => x.name === name);
    return Promise.resolve(s && structuredClone(s));
  }

  listStudies(): Promise<StudyInfo[]> {
    return Promise.resolve(structuredClone(this.studies));
  }

  setStudyUserAttr(studyId: number, key: string, value: JsonValue): Promise<void> {
    const s = this.studies.find((x) => x.id === studyId);
    if (!s) return Promise.reject(new Error(`no study with id ${studyId}`));
    s.userAttrs[key] = value;
    return Promise.resolve();
  }

  private newTrial(studyId: number, state: TrialState, systemAttrs: Record<string, JsonValue>, worker: string | null): FrozenTrial {
    const now = new Date();
    const t: FrozenTrial = {
      id: this.trials.length + 1,
      studyId,
      number: this.trials.filter((x) => x.studyId === studyId).length,
      state,
      value: null,
      params: {},
      internalParams: {},
      distributions: {},
      intermediate: new Map(),
      userAttrs: {},
      systemAttrs,
      startedAt: state === 'running' ? now : null,
      completedAt: null,
      heartbeatAt: state === 'running' ? now : null,
      worker,
    };
    this.trials.push(t);
    return t;
  }

  startTrial(studyId: number, options: StartTrialOptions): Promise<FrozenTrial | undefined> {
    const waiting = this.trials.find((t) => t.studyId === studyId && t.state === 'waiting');
    if (waiting) {
      waiting.state = 'running';
      waiting.startedAt = waiting.heartbeatAt = new Date();
      waiting.worker = options.worker;
      return Promise.resolve(copy(waiting));
    }
    if (options.maxTrials !== undefined) {
      const live = this.trials.filter((t) => t.studyId === studyId && t.state !== 'failed').length;
      if (live >= options.maxTrials) return Promise.resolve(undefined);
    }
    return Promise.resolve(copy(this.newTrial(studyId, 'running', {}, options.worker)));
  }

  enqueueTrial(studyId: number, systemAttrs: Record<string, JsonValue>): Promise<FrozenTrial> {
    return Promise.resolve(copy(this.newTrial(studyId, 'waiting', structuredClone(systemAttrs), null)));
  }

  private get(trialId: number): FrozenTrial {
    const t = this.trials[trialId - 1];
    if (!t) throw new Error(`no trial with id ${trialId}`);
    return t;
  }

  private running(trialId: number): FrozenTrial {
    const t = this.get(trialId);
    if (t.state !== 'running') throw new Error(`trial ${t.number} is ${t.state}, not running`);
    return t;
  }

  setParam(trialId: number, name: string, internal: number, distribution: Distribution): Promise<void> {
    try {
      const t = this.running(trialId);
      t.internalParams[name] = internal;
      t.distributions[name] = distribution;
      t.params[name] = toExternal(distribution, internal);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  setIntermediate(trialId: number, step: number, value: number): Promise<void> {
    try {
      const t = this.running(trialId);
      t.intermediate.set(step, value);
      t.intermediate = new Map([...t.intermediate].sort((a, b) => a[0] - b[0]));
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  setTrialAttr(trialId: number, kind: 'user' | 'system', key: string, value: JsonValue): Promise<void> {
    try {
      const t = this.get(trialId);
      (kind === 'user' ? t.userAttrs : t.systemAttrs)[key] = structuredClone(value);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  finishTrial(trialId: number, state: Exclude<TrialState, 'running' | 'waiting'>, value: number | null): Promise<boolean> {
    const t = this.get(trialId);
    if (t.state !== 'running') return Promise.resolve(false);
    t.state = state;
    t.value = value;
    t.completedAt = new Date();
    return Promise.resolve(true);
  }

  heartbeat(trialId: number): Promise<void> {
    const t = this.get(trialId);
    if (t.state === 'running') t.heartbeatAt = new Date();
    return Promise.resolve();
  }

  failStaleTrials(studyId: number, graceSeconds: number, maxRetry: number): Promise<number[]> {
    const cutoff = Date.now() - graceSeconds * 1000;
    const failed: number[] = [];
    for (const t of this.trials) {
      if (t.studyId !== studyId || t.state !== 'running' || (t.heartbeatAt?.getTime() ?? 0) >= cutoff) continue;
      t.state = 'failed';
      t.completedAt = new Date();
      failed.push(t.number);
      if (retryCount(t) < maxRetry) this.newTrial(studyId, 'waiting', retryAttrs(t), null);
    }
    return Promise.resolve(failed);
  }

  getTrials(studyId: number, states?: readonly TrialState[]): Promise<FrozenTrial[]> {
    return Promise.resolve(this.trials.filter((t) => t.studyId === studyId && (!states || states.includes(t.state))).map(copy));
  }

  getTrial(trialId: number): Promise<FrozenTrial> {
    try {
      return Promise.resolve(copy(this.get(trialId)));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
