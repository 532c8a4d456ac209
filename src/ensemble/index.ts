export { Ensemble, readEnsembleFile, parseMember } from './ensemble.js';
export type { EnsembleEntry, EnsembleEvaluation, EnsembleFile, EnsembleMember, EnsemblePrediction, EnsembleScores, Vote } from './ensemble.js';
