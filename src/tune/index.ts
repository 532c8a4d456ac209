// torchlet tune: hyperparameter search with pruning (the study API, samplers, pruners, stores).
export { createStudy, loadStudy, bestOf, Study, Trial, TrialPruned } from './study.js';
export type { CreateStudyOptions, Objective, OptimizeOptions } from './study.js';
export { RandomSampler, sampleUniform } from './samplers/random.js';
export type { RandomSamplerOptions } from './samplers/random.js';
export { GridSampler } from './samplers/grid.js';
export type { GridSamplerOptions } from './samplers/grid.js';
export { TPESampler, defaultGamma, defaultWeights } from './samplers/tpe.js';
export type { TPESamplerOptions } from './samplers/tpe.js';
export type { Sampler, SamplerContext } from './samplers/sampler.js';
export { MedianPruner, NopPruner, PercentilePruner, SuccessiveHalvingPruner } from './pruners.js';
export type { Pruner, PrunerContext, PruneDecision, PercentilePrunerOptions, SuccessiveHalvingOptions } from './pruners.js';
export { MemoryStorage } from './memory-storage.js';
export type { TuneStorage, StartTrialOptions } from './storage.js';
export { SearchSpaceError, floatDistribution, intDistribution, categoricalDistribution } from './distributions.js';
export type { Distribution, FloatDistribution, IntDistribution, CategoricalDistribution, Choice, ParamValue } from './distributions.js';
export type { Direction, FrozenTrial, JsonValue, StudyInfo, TrialState } from './types.js';
