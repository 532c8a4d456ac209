export { Ensemble, readEnsembleFile, parseMember } from './ensemble.js';
export type { EnsembleEntry, EnsembleEvaluation, EnsembleFile, EnsembleMember, EnsemblePrediction, Vote } from './ensemble.js';
