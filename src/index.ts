// torchlet's public API.
export { native } from './native.js';
export type {
  CpuKernels,
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
export type { Layer, LayerBody, Block, Activation, ModelSpec, InputSpec, Size2d } from './spec.js';
// `models`: the three released reference models; `allModels`: those and the zoo, at MNIST defaults.
export { models, light, lightest, superLight, DOCUMENTED_PARAMS } from './models.js';
export type { ModelName } from './models.js';
export { models as allModels, isModelName, zoo, withoutDropout } from './zoo/index.js';
export type { ModelName as AnyModelName, ZooName, ZooOptions, VitOptions, EfficientNetOptions } from './zoo/index.js';
import { Model as CoreModel } from './model.js';
import { exportOnnx, type OnnxExportOptions } from './export/onnx.js';

export { Model };
export type { ModelOptions, Prediction, StateTensor } from './model.js';
export { Dataset, loadMnist, loadKaggleCsv } from './dataset.js';
export { parseKaggleCsv, readKaggleCsv, submissionCsv } from './data/kaggle.js';
export type { LoadOptions, MnistData, KaggleData } from './dataset.js';
export { train, createTrainer, resolveRecipe, TrainingAborted } from './train.js';
export type { EpochRecord, TrainData, TrainOptions, TrainResult } from './train.js';
export { REFERENCE_RECIPE, REFERENCE_AUGMENT, AUGMENT_PRESETS, NORMALIZATIONS, METRICS, withNormalization, hasNormalization, isNormalizationName } from './recipe.js';
export type { Recipe, OptimizerChoice, SchedulerChoice, EarlyStopping, Metric, AugmentPreset, NormalizationName, OptimizerName, SchedulerName } from './recipe.js';
export { cuda, setThreads, getThreads, setCpuKernels, getCpuKernels, DEFAULT_CPU_KERNELS } from './runtime.js';
export { ConfigSchema, ConfigError, parseConfig, parseConfigText, readConfig, resolveConfig, prepareTraining } from './config.js';
export type { TrainConfig, ResolvedConfig, PreparedTraining } from './config.js';
export type { RunRecorder, OwnedRun, RunSink, RunStart } from './train.js';
export { RunStore, openStore, RunNotFoundError, LeaseLostError, StoreError, DEFAULT_STORE, RUN_STATUSES } from './store/store.js';
export type { Run, RunStatus, RunFilter, RunProgress, NewRun, Artifact, ArtifactInfo, BestMetric } from './store/store.js';
export { stratifiedSplit, stratifiedIndices } from './split.js';
export type { SplitOptions } from './split.js';
export { releasedWeightsPath } from './weights.js';
export { preprocessImage, preprocessPixels, sniffFormat, encodePng, ImageError, DEFAULT_MAX_PIXELS } from './image/index.js';
export type { BBox, Channels, ImageErrorCode, ImageFormat, PreprocessOptions, PreprocessResult } from './image/index.js';
export { Ensemble, readEnsembleFile, parseMember } from './ensemble/index.js';
export type { EnsembleEntry, EnsembleEvaluation, EnsembleFile, EnsembleMember, EnsemblePrediction, EnsembleScores, Vote } from './ensemble/index.js';
export * from './tune/index.js';
export { exportOnnx, toOnnx, OnnxExportError, IR_VERSION, OPSET, ONNX_NAMES } from './export/onnx.js';
export type { OnnxExportOptions } from './export/onnx.js';

/**
 * torchlet's Model: the core model (src/model.ts) plus the methods that subsystems add,
 * here exportOnnx. Core never imports a subsystem, so the public entry point, where core and
 * subsystems are composed, is where the two meet; a subclass (rather than patching the
 * prototype under a module augmentation) keeps the published type declarations true.
 */
class Model extends CoreModel {
  /** Writes this model as an ONNX file (IR 8, opset 17, eval mode); returns the file's size in bytes. */
  exportOnnx(path: string, options?: OnnxExportOptions): number {
    return exportOnnx(this, path, options);
  }
}
