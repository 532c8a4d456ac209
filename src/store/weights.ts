// A recorded run's best weights as a file, with the architecture and input normalisation
// it trained: for `--run ID` in evaluate and predict, and for /predict?run=ID.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isModelName, type ModelName } from '../zoo/index.js';
import { isNormalizationName, type NormalizationName } from '../recipe.js';
import { RunNotFoundError, type Run, type RunStore } from './store.js';

/** The run exists but has no usable weights (not trained yet, or not a torchlet model). */
export class NoWeightsError extends Error {}

export interface RunWeights {
  run: Run;
  model: ModelName;
  /** The normalisation the run trained with (`normalize` in its config); undefined: the model's own. */
  normalize: NormalizationName | undefined;
  path: string;
  /** "run <id> (<name>)", for messages and reports. */
  label: string;
  dispose(): void;
}

/** The best weights of run `id` (or a unique prefix), written to a temporary file that dispose() removes. */
export async function bestWeights(store: RunStore, id: string): Promise<RunWeights> {
  const run = await store.getRun(id);
  if (run.deleted) throw new RunNotFoundError(`run ${run.id} was deleted`);
  const trained = run.config.model ?? run.params.model;
  if (typeof trained !== 'string' || !isModelName(trained)) throw new NoWeightsError(`run ${run.id} does not name a model torchlet knows ('${String(trained)}')`);
  // A run recorded by the library keeps the whole recipe, whose normalize is null for the model's own.
  const normalize = run.config.normalize ?? undefined;
  if (normalize !== undefined && (typeof normalize !== 'string' || !isNormalizationName(normalize))) throw new NoWeightsError(`run ${run.id} names an unknown normalisation '${String(normalize)}'`);
  const best = await store.artifact(run.id, 'best.pt');
  if (best === undefined) throw new NoWeightsError(`run ${run.id} (${run.name}, ${run.status}) has no best weights yet`);
  const dir = mkdtempSync(join(tmpdir(), 'torchlet-run-weights-'));
  const path = join(dir, `${run.id.slice(0, 8)}-best.pt`);
  writeFileSync(path, best.data);
  return { run, model: trained, normalize, path, label: `run ${run.id} (${run.name})`, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
