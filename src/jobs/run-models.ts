// /predict?run=ID: a finished run's best weights, loaded into the server's registry the
// first time they are asked for (served as model 'run-<id>') and kept, the most recently
// used few, so that each run is loaded once and batched like every other model.
import { ApiError } from '../serve/errors.js';
import { loadServedModel } from '../serve/models.js';
import type { ModelRegistry } from '../serve/registry.js';
import { NoWeightsError, bestWeights } from '../store/weights.js';
import { RunNotFoundError, type RunStore } from '../store/store.js';

export interface RunModelOptions {
  device?: string;
  /** Runs kept loaded at once (default 8); the least recently used one is dropped first. */
  max?: number;
}

/** A resolver for serve's `runModel`: run id (or prefix) to the name it is served under. */
export function runModels(store: RunStore, registry: ModelRegistry, options: RunModelOptions = {}): (id: string) => Promise<string> {
  const max = options.max ?? 8;
  const loading = new Map<string, Promise<string>>();
  const used: string[] = [];

  const load = async (id: string): Promise<string> => {
    const run = await store.findRun(id).catch((err: unknown) => Promise.reject(err instanceof RunNotFoundError ? new ApiError(400, 'ambiguous_run', err.message) : err));
    if (run === undefined || run.deleted) throw new ApiError(404, 'unknown_run', `no run '${id}' in the run store`);
    if (run.status !== 'finished') throw new ApiError(409, 'run_not_finished', `run ${run.id} (${run.name}) is ${run.status}: only a finished run's weights are served`);
    const name = `run-${run.id.slice(0, 12)}`;
    if (registry.has(name)) return name;
    let pending = loading.get(name);
    if (pending === undefined) {
      pending = (async () => {
        let weights;
        try {
          weights = await bestWeights(store, run.id);
        } catch (err) {
          throw err instanceof NoWeightsError ? new ApiError(422, 'no_weights', err.message) : err;
        }
        try {
          const served = loadServedModel(weights.model, {
            weights: weights.path,
            as: name,
            ...(options.device !== undefined && { device: options.device }),
            ...(weights.normalize !== undefined && { normalize: weights.normalize }),
          });
          registry.add({ ...served, description: `${weights.label}: ${served.description}`, source: `${weights.label}, best.pt` });
        } finally {
          weights.dispose();
        }
        return name;
      })().finally(() => loading.delete(name));
      loading.set(name, pending);
    }
    return pending;
  };

  return async (id) => {
    const name = await load(id);
    const at = used.indexOf(name);
    if (at >= 0) used.splice(at, 1);
    used.push(name);
    while (used.length > max) {
      const old = used.shift();
      if (old !== undefined) await registry.remove(old);
    }
    return name;
  };
}
