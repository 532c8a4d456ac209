// torchlet's public API.
export { native } from './native.js';
export type {
  AugmentOptions,
  EpochStats,
  EvalStats,
  OneCycleOptions,
  OptimizerOptions,
  SchedulerOptions,
  ProgressInfo,
  TrainerOptions,
} from './native.js';
export { layers, defineModel, countParams, MNIST_INPUT } from './spec.js';
export type { Layer, ModelSpec, InputSpec } from './spec.js';
export { models, light, lightest, superLight, DOCUMENTED_PARAMS, isModelName } from './models.js';
export type { ModelName } from './models.js';
export { Model } from './model.js';
export type { ModelOptions, Prediction } from './model.js';
export { Dataset, loadMnist, loadKaggleCsv } from './dataset.js';
export { parseKaggleCsv, readKaggleCsv, submissionCsv } from './data/kaggle.js';
export type { LoadOptions, MnistData, KaggleData } from './dataset.js';
export { train, createTrainer, resolveRecipe } from './train.js';
export type { EpochRecord, TrainData, TrainOptions, TrainResult } from './train.js';
export { REFERENCE_RECIPE, REFERENCE_AUGMENT, AUGMENT_PRESETS, NORMALIZATIONS, METRICS, withNormalization, hasNormalization, isNormalizationName } from './recipe.js';
export type { Recipe, OptimizerChoice, SchedulerChoice, EarlyStopping, Metric, AugmentPreset, NormalizationName, OptimizerName, SchedulerName } from './recipe.js';
export { cuda, setThreads, getThreads } from './runtime.js';
export { stratifiedSplit, stratifiedIndices } from './split.js';
export type { SplitOptions } from './split.js';
export { releasedWeightsPath } from './weights.js';
export { preprocessImage, preprocessPixels, sniffFormat, encodePng, ImageError, DEFAULT_MAX_PIXELS } from './image/index.js';
export type { BBox, Channels, ImageErrorCode, ImageFormat, PreprocessOptions, PreprocessResult } from './image/index.js';
export { Ensemble, readEnsembleFile, parseMember } from './ensemble/index.js';
export type { EnsembleEntry, EnsembleEvaluation, EnsembleFile, EnsembleMember, EnsemblePrediction, Vote } from './ensemble/index.js';
export * from './tune/index.js';
