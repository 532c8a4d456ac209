// Shared CLI plumbing: typed option parsers that reject bad values with exit code 2,
// and one place that turns errors into messages.
import { InvalidArgumentError } from 'commander';
import { parseDataset as parseDatasetValue, type DatasetChoice } from '../config.js';
import { Model } from '../model.js';
import { models, type ModelName } from '../zoo/index.js';

/** Bad input from the user (a flag, a config, a weights file): reported without a stack trace, exit code 2. */
export class InputError extends Error {}

/** Runs `fn`, re-labelling any failure as the user's input being wrong. */
export function asInput<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new InputError(`${what}: ${message(err)}`);
  }
}

export function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got '${value}'`);
    return n;
  };
}

export function nonNegativeInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be a non-negative integer, got '${value}'`);
    return n;
  };
}

export function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got '${value}'`);
    return n;
  };
}

export function nonNegativeNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number >= 0, got '${value}'`);
    return n;
  };
}

/** Loads weights, naming the architecture they do fit when it is not the one asked for. */
export function loadWeights(model: Model, name: ModelName, path: string): void {
  try {
    model.load(path);
  } catch (err) {
    const fits = (Object.keys(models) as ModelName[]).filter((other) => other !== name && fitsArchitecture(other, path));
    const hint = fits.length > 0 ? `\nthese weights fit --model ${fits.join(' or ')}` : '';
    throw new InputError(`cannot load weights '${path}': ${message(err)}${hint}`);
  }
}

function fitsArchitecture(name: ModelName, path: string): boolean {
  try {
    Model.fromFile(models[name], path).dispose();
    return true;
  } catch {
    return false;
  }
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `--dataset`: 'mnist', 'fashion-mnist', or 'kaggle:DIR' (Kaggle's train.csv and test.csv in DIR). */
export function parseDataset(value: string): DatasetChoice {
  try {
    return parseDatasetValue(value);
  } catch (err) {
    throw new InvalidArgumentError(`--${message(err)}`);
  }
}
