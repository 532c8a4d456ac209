// `--run ID` for evaluate and predict: a recorded run's best weights, fetched from the
// store into a temporary file, with the architecture (and normalisation) the run trained.
import type { ModelName } from '../zoo/index.js';
import type { RunWeights } from '../store/weights.js';
import { InputError, message } from './common.js';

export type { RunWeights };

/** The best weights of run `id` (or a unique prefix) in the store at `location`. */
export async function runWeights(id: string, location: string | undefined, model: ModelName | undefined): Promise<RunWeights> {
  const [{ openStore, RunNotFoundError }, { bestWeights, NoWeightsError }] = await Promise.all([import('../store/index.js'), import('../store/weights.js')]);
  const store = await openStore(location).catch((err: unknown) => Promise.reject(new InputError(message(err))));
  try {
    const weights = await bestWeights(store, id).catch((err: unknown) =>
      Promise.reject(err instanceof RunNotFoundError || err instanceof NoWeightsError ? new InputError(err.message) : err),
    );
    if (model !== undefined && model !== weights.model) {
      weights.dispose();
      throw new InputError(`--model ${model} does not match run ${weights.run.id}, which trained ${weights.model}`);
    }
    return weights;
  } finally {
    await store.close();
  }
}
