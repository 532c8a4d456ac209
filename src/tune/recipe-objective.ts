// The objective of `torchlet tune`: train one recipe on the training split, report the
// validation metric after every epoch (so the pruner can stop the trial), and return the
// best validation value. The test set is never seen here.
import type { Dataset } from '../dataset.js';
import { Model } from '../model.js';
import { models, type ModelName } from '../models.js';
import { REFERENCE_RECIPE, type Recipe } from '../recipe.js';
import { train, type EpochRecord, type TrainOptions } from '../train.js';
import type { ParamValue } from './distributions.js';
import type { RecipeValues, SearchableName, TuneSpace } from './space.js';
import { TrialPruned, type Trial } from './study.js';

export interface RecipeTrialData {
  train: Dataset;
  val: Dataset;
}

export interface RecipeTrialResult {
  model: ModelName;
  aug: boolean;
  recipe: Recipe;
}

/** Samples (or takes fixed) values for every parameter of the space, in the file's order. */
export function suggestValues(trial: Trial, space: TuneSpace): RecipeValues {
  const values: RecipeValues = { ...space.fixed };
  for (const [name, d] of Object.entries(space.params) as [SearchableName, NonNullable<TuneSpace['params'][SearchableName]>][]) {
    let v: ParamValue;
    if (d.type === 'categorical') v = trial.suggestCategorical(name, d.choices);
    else if (d.type === 'int') v = trial.suggestInt(name, d.low, d.high, { log: d.log, step: d.step });
    else v = trial.suggestFloat(name, d.low, d.high, { log: d.log, step: d.step });
    if (v === null) throw new Error(`parameter '${name}' has no value`);
    values[name] = v;
  }
  return values;
}

/** The model, augmentation switch and full recipe that `values` describe (the reference recipe elsewhere). */
export function recipeFrom(values: RecipeValues): RecipeTrialResult {
  const num = (k: SearchableName, fallback: number): number => (typeof values[k] === 'number' ? values[k] : fallback);
  const ref = REFERENCE_RECIPE;
  const translate = num('translate', Array.isArray(ref.augment.translate) ? ref.augment.translate[0] : (ref.augment.translate ?? 0));
  const shear = num('shear', Array.isArray(ref.augment.shear) ? ref.augment.shear[1] : (ref.augment.shear ?? 0));
  const elasticAlpha = num('elasticAlpha', 0);
  const recipe: Recipe = {
    ...ref,
    epochs: num('epochs', ref.epochs),
    batchSize: num('batchSize', ref.batchSize),
    lr: num('lr', ref.lr),
    maxLr: num('maxLr', ref.maxLr),
    weightDecay: num('weightDecay', ref.weightDecay),
    pctStart: num('pctStart', ref.pctStart),
    divFactor: num('divFactor', ref.divFactor),
    finalDivFactor: num('finalDivFactor', ref.finalDivFactor),
    baseMomentum: num('baseMomentum', ref.baseMomentum),
    maxMomentum: num('maxMomentum', ref.maxMomentum),
    beta2: num('beta2', ref.beta2),
    seed: num('seed', ref.seed),
    labelSmoothing: num('labelSmoothing', ref.labelSmoothing),
    recalibrateBatchNorm: values.recalibrateBatchNorm === true,
    augment: {
      ...ref.augment,
      degrees: num('degrees', ref.augment.degrees ?? 0),
      translate: [translate, translate],
      shear: [-shear, shear],
      distortion: num('distortion', ref.augment.distortion ?? 0),
      perspectiveP: num('perspectiveP', ref.augment.perspectiveP ?? 0),
      ...(elasticAlpha > 0 && { elastic: { alpha: elasticAlpha, sigma: num('elasticSigma', 5) } }),
    },
  };
  const model = typeof values.model === 'string' ? (values.model as ModelName) : 'super_light';
  return { model, aug: values.aug === true, recipe };
}

export interface RecipeObjectiveOptions {
  space: TuneSpace;
  data: RecipeTrialData;
  device?: string;
  /** Extra train() options (a run store to record into, where to save weights). */
  trainOptions?: (trial: Trial, setup: RecipeTrialResult) => Partial<TrainOptions>;
  onEpoch?: (trial: Trial, record: EpochRecord) => void;
}

/** Trains the trial's recipe; resolves to the best validation value, or throws TrialPruned. */
export async function runRecipeTrial(trial: Trial, options: RecipeObjectiveOptions): Promise<number> {
  const { space, data } = options;
  const setup = recipeFrom(suggestValues(trial, space));
  const model = new Model(models[setup.model], { device: options.device ?? 'auto', seed: setup.recipe.seed });
  const metric = (r: EpochRecord): number => (space.objective === 'val_loss' ? r.testLoss : r.testAccuracy);
  let best: number | undefined;
  try {
    await train(
      model,
      // The validation split stands in as train()'s evaluation set: the test set is not passed at all.
      { train: data.train, test: data.val },
      {
        ...setup.recipe,
        aug: setup.aug,
        skipTrainEval: true,
        ...options.trainOptions?.(trial, setup),
        onEpoch: async (record) => {
          const value = metric(record);
          if (best === undefined || (space.direction === 'maximize' ? value > best : value < best)) best = value;
          options.onEpoch?.(trial, record);
          await trial.report(value, record.epoch);
          if (await trial.shouldPrune()) throw new TrialPruned(`pruned after epoch ${record.epoch}: ${space.objective} ${value}`);
        },
      },
    );
  } finally {
    model.dispose();
  }
  if (best === undefined) throw new Error('the trial trained no epochs');
  return best;
}
