// Search space files of `torchlet tune`: the example parses, and each kind of mistake is
// an error naming the field, raised before any trial runs.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { recipeFrom } from '../../src/tune/recipe-objective.js';
import { parseSpace, readSpace } from '../../src/tune/space.js';
import { SearchSpaceError } from '../../src/tune/distributions.js';
import { SearchSpaceError as Exported } from '../../src/tune/index.js';

const example = fileURLToPath(new URL('../../examples/tune-super-light.yaml', import.meta.url));

describe('search space files', () => {
  it('the example parses: TPE, the median pruner, validation accuracy, maximised', () => {
    const s = readSpace(example);
    expect(s.direction).toBe('maximize');
    expect(s.objective).toBe('val_accuracy');
    expect(s.valSplit).toBe(10000);
    expect(s.fixed).toEqual({ model: 'super_light', epochs: 5, aug: true });
    expect(s.params.maxLr).toEqual({ type: 'float', low: 0.001, high: 0.05, log: true, step: null });
    expect(s.params.batchSize).toEqual({ type: 'categorical', choices: [64, 128, 256] });
    expect(s.makeSampler().name).toBe('tpe');
    expect(s.makePruner().name).toBe('median');
    expect(SearchSpaceError).toBe(Exported);
  });

  const bad: [string, unknown, RegExp][] = [
    ['low > high', { params: { lr: { low: 0.1, high: 0.01 } } }, /params\.lr.*low \(0\.1\) must be <= high \(0\.01\)/],
    ['log with low <= 0', { params: { weightDecay: { low: 0, high: 0.01, log: true } } }, /params\.weightDecay.*log needs low > 0/],
    ['an unknown parameter', { params: { learningRate: { low: 0.001, high: 0.1 } } }, /params\.learningRate: unknown parameter 'learningRate'/],
    ['an unknown fixed value', { fixed: { momentum: 0.9 }, params: { lr: { low: 0.001, high: 0.1 } } }, /fixed\.momentum: unknown parameter/],
    ['an empty choice', { params: { model: { choices: [] } } }, /params\.model.*choices must be a non-empty list/],
    ['an unknown model', { params: { model: { choices: ['super_light', 'resnet'] } } }, /params\.model\.choices\[1\]: must be one of light, lightest, super_light/],
    ['a float batch size', { params: { batchSize: { low: 16.5, high: 64 } } }, /params\.batchSize.*low must be an integer/],
    ['a fraction out of range', { params: { pctStart: { low: 0.1, high: 1.5 } } }, /params\.pctStart\.high: must be within \[0, 1\]/],
    ['a value both fixed and searched', { fixed: { lr: 0.01 }, params: { lr: { low: 0.001, high: 0.1 } } }, /params\.lr: 'lr' is both fixed and searched/],
    ['a misspelt field', { params: { lr: { low: 0.001, hgh: 0.1 } } }, /params\.lr/],
    ['a bad pruner', { pruner: { type: 'hyperband' }, params: { lr: { low: 0.001, high: 0.1 } } }, /pruner\.type/],
    ['no parameters', { params: {} }, /params: name at least one parameter/],
    ['a range for a choice-only value', { params: { aug: { low: 0, high: 1 } } }, /params\.aug: 'aug' takes choices, not a range/],
  ];
  for (const [what, raw, pattern] of bad) {
    it(`rejects ${what}, naming the field`, () => {
      expect(() => parseSpace(raw, "'space.yaml'")).toThrow(SearchSpaceError);
      expect(() => parseSpace(raw, "'space.yaml'")).toThrow(pattern);
    });
  }

  it('rejects a missing file and broken YAML with the file name', () => {
    expect(() => readSpace('/nonexistent/space.yaml')).toThrow(/cannot read search space '\/nonexistent\/space\.yaml'/);
    expect(() => readSpace(fileURLToPath(new URL('../../package.json', import.meta.url)))).toThrow(/is invalid: .*params/);
  });
  it('searches label smoothing, within [0, 1), into the recipe', () => {
    expect(recipeFrom({ labelSmoothing: 0.05 }).recipe.labelSmoothing).toBe(0.05);
    expect(recipeFrom({}).recipe.labelSmoothing).toBe(0);
    expect(() => parseSpace({ params: { labelSmoothing: { low: 0, high: 1 } } }, 'space')).toThrow(/labelSmoothing/);
  });
  it('searches batch norm recalibration as a choice of true or false', () => {
    expect(recipeFrom({ recalibrateBatchNorm: true }).recipe.recalibrateBatchNorm).toBe(true);
    expect(recipeFrom({}).recipe.recalibrateBatchNorm).toBe(false);
    expect(() => parseSpace({ params: { recalibrateBatchNorm: { choices: [true, 'yes'] } } }, 'space')).toThrow(/recalibrateBatchNorm/);
  });
  it('searches the elastic distortion, none unless alpha is above 0, sigma 5 unless given', () => {
    expect(recipeFrom({ elasticAlpha: 30 }).recipe.augment.elastic).toEqual({ alpha: 30, sigma: 5 });
    expect(recipeFrom({ elasticAlpha: 30, elasticSigma: 4 }).recipe.augment.elastic).toEqual({ alpha: 30, sigma: 4 });
    expect(recipeFrom({ elasticSigma: 4 }).recipe.augment.elastic).toBeUndefined();
    expect(() => parseSpace({ params: { elasticAlpha: { low: -1, high: 10 } } }, 'space')).toThrow(/elasticAlpha/);
  });
});
