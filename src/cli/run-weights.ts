// `--run ID` for evaluate and predict: a recorded run's best weights, fetched from the
// store into a temporary file, with the architecture the run trained.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isModelName, type ModelName } from '../zoo/index.js';
import { InputError, message } from './common.js';

export interface RunWeights {
  model: ModelName;
  path: string;
  /** "run <id> (<name>)", for messages and reports. */
  label: string;
  dispose(): void;
}

/** The best weights of run `id` (or a unique prefix) in the store at `location`. */
export async function runWeights(id: string, location: string | undefined, model: ModelName | undefined): Promise<RunWeights> {
  const { openStore, RunNotFoundError } = await import('../store/index.js');
  const store = await openStore(location).catch((err: unknown) => Promise.reject(new InputError(message(err))));
  try {
    const run = await store.getRun(id).catch((err: unknown) => Promise.reject(err instanceof RunNotFoundError ? new InputError(err.message) : err));
    const trained = run.config.model ?? run.params.model;
    if (typeof trained !== 'string' || !isModelName(trained)) throw new InputError(`run ${run.id} does not name a model torchlet knows ('${String(trained)}')`);
    if (model !== undefined && model !== trained) throw new InputError(`--model ${model} does not match run ${run.id}, which trained ${trained}`);
    const best = await store.artifact(run.id, 'best.pt');
    if (best === undefined) throw new InputError(`run ${run.id} (${run.name}, ${run.status}) has no best weights yet`);
    const dir = mkdtempSync(join(tmpdir(), 'torchlet-run-weights-'));
    const path = join(dir, `${run.id.slice(0, 8)}-best.pt`);
    writeFileSync(path, best.data);
    return { model: trained, path, label: `run ${run.id} (${run.name})`, dispose: () => rmSync(dir, { recursive: true, force: true }) };
  } finally {
    await store.close();
  }
}
