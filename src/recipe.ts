// The reference training recipe: the defaults of `npm run train`.
import type { AugmentOptions } from './native.js';

export interface Recipe {
  epochs: number;
  batchSize: number;
  /** AdamW's base lr; OneCycleLR overrides it with maxLr / divFactor at the first step, as in PyTorch. */
  lr: number;
  maxLr: number;
  weightDecay: number;
  seed: number;
  divFactor: number;
  finalDivFactor: number;
  pctStart: number;
  anneal: 'cos' | 'linear';
  baseMomentum: number;
  maxMomentum: number;
  beta2: number;
  /** The augmentation applied with --aug. */
  augment: AugmentOptions;
}

export const REFERENCE_AUGMENT: AugmentOptions = {
  degrees: 5,
  translate: [0.05, 0.05],
  shear: [-5, 5],
  distortion: 0.2,
  perspectiveP: 0.1,
};

export const REFERENCE_RECIPE: Recipe = {
  epochs: 15,
  batchSize: 128,
  lr: 0.01,
  maxLr: 0.01,
  weightDecay: 1e-4,
  seed: 42,
  divFactor: 10,
  finalDivFactor: 1000,
  pctStart: 0.3,
  anneal: 'cos',
  baseMomentum: 0.85,
  maxMomentum: 0.95,
  beta2: 0.999,
  augment: REFERENCE_AUGMENT,
};
