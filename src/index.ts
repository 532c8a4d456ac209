// torchlet's public API.
export { native } from './native.js';
export type {
  AugmentOptions,
  EpochStats,
  EvalStats,
  OneCycleOptions,
  OptimizerOptions,
  ProgressInfo,
  TrainerOptions,
} from './native.js';
export { layers, defineModel, countParams, MNIST_INPUT } from './spec.js';
export type { Layer, LayerBody, Block, Activation, ModelSpec, InputSpec } from './spec.js';
// `models`: the three released reference models; `allModels`: those and the zoo, at MNIST defaults.
export { models, light, lightest, superLight, DOCUMENTED_PARAMS } from './models.js';
export type { ModelName } from './models.js';
export { models as allModels, isModelName, zoo, withoutDropout } from './zoo/index.js';
export type { ModelName as AnyModelName, ZooName, ZooOptions, VitOptions, EfficientNetOptions } from './zoo/index.js';
export { Model } from './model.js';
export type { ModelOptions, Prediction } from './model.js';
export { Dataset, loadMnist } from './dataset.js';
export type { LoadOptions, MnistData } from './dataset.js';
export { train, createTrainer, resolveRecipe } from './train.js';
export type { EpochRecord, TrainData, TrainOptions, TrainResult } from './train.js';
export { REFERENCE_RECIPE, REFERENCE_AUGMENT } from './recipe.js';
export type { Recipe } from './recipe.js';
export { cuda, setThreads, getThreads } from './runtime.js';
export { releasedWeightsPath } from './weights.js';
export { preprocessImage, preprocessPixels, sniffFormat, encodePng, ImageError, DEFAULT_MAX_PIXELS } from './image/index.js';
export type { BBox, Channels, ImageErrorCode, ImageFormat, PreprocessOptions, PreprocessResult } from './image/index.js';
export * from './tune/index.js';
