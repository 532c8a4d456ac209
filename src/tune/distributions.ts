// Parameter distributions in Optuna's shape (FloatDistribution, IntDistribution,
// CategoricalDistribution), their internal representation (a number: the value itself, or
// a categorical's index), validation that names the field, and Optuna's JSON form.
import { at } from './at.js';

export type Choice = string | number | boolean | null;
export type ParamValue = Choice;

export interface FloatDistribution {
  type: 'float';
  low: number;
  high: number;
  log: boolean;
  step: number | null;
}
export interface IntDistribution {
  type: 'int';
  low: number;
  high: number;
  log: boolean;
  step: number;
}
export interface CategoricalDistribution {
  type: 'categorical';
  choices: readonly Choice[];
}
export type Distribution = FloatDistribution | IntDistribution | CategoricalDistribution;

/** A search space or suggestion that cannot work; the message names the parameter and field. */
export class SearchSpaceError extends Error {
  override name = 'SearchSpaceError';
}

function fail(name: string, what: string): never {
  throw new SearchSpaceError(`parameter '${name}': ${what}`);
}

function finite(name: string, field: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x)) fail(name, `${field} must be a finite number, got ${JSON.stringify(x)}`);
  return x;
}

export function floatDistribution(name: string, low: number, high: number, opts: { log?: boolean; step?: number | null } = {}): FloatDistribution {
  finite(name, 'low', low);
  finite(name, 'high', high);
  const log = opts.log ?? false;
  const step = opts.step ?? null;
  if (low > high) fail(name, `low (${low}) must be <= high (${high})`);
  if (log && step !== null) fail(name, 'log and step cannot both be set');
  if (log && low <= 0) fail(name, `log needs low > 0, got low ${low}`);
  if (step !== null) {
    if (finite(name, 'step', step) <= 0) fail(name, `step must be > 0, got ${step}`);
    // Optuna shrinks high onto the grid low + k * step.
    const k = Math.floor((high - low) / step + 1e-9);
    return { type: 'float', low, high: roundTo(low + k * step, step), log, step };
  }
  return { type: 'float', low, high, log, step };
}

export function intDistribution(name: string, low: number, high: number, opts: { log?: boolean; step?: number } = {}): IntDistribution {
  for (const [field, v] of [['low', low], ['high', high]] as const) {
    if (!Number.isSafeInteger(v)) fail(name, `${field} must be an integer, got ${JSON.stringify(v)}`);
  }
  const log = opts.log ?? false;
  const step = opts.step ?? 1;
  if (!Number.isSafeInteger(step) || step <= 0) fail(name, `step must be a positive integer, got ${JSON.stringify(step)}`);
  if (low > high) fail(name, `low (${low}) must be <= high (${high})`);
  if (log && step !== 1) fail(name, 'log needs step 1');
  if (log && low < 1) fail(name, `log needs low >= 1, got low ${low}`);
  return { type: 'int', low, high: high - ((high - low) % step), log, step };
}

export function categoricalDistribution(name: string, choices: readonly unknown[]): CategoricalDistribution {
  if (!Array.isArray(choices) || choices.length === 0) fail(name, 'choices must be a non-empty list');
  for (const c of choices) {
    if (!(c === null || ['string', 'number', 'boolean'].includes(typeof c)) || (typeof c === 'number' && !Number.isFinite(c))) {
      fail(name, `choices must be strings, finite numbers, booleans or null, got ${JSON.stringify(c)}`);
    }
  }
  const seen = new Set(choices.map((c) => JSON.stringify(c)));
  if (seen.size !== choices.length) fail(name, 'choices must not repeat');
  return { type: 'categorical', choices: choices as Choice[] };
}

function roundTo(x: number, step: number): number {
  // Keep grid values free of float noise (0.1 + 2 * 0.1 -> 0.30000000000000004).
  const digits = Math.max(0, Math.min(15, -Math.floor(Math.log10(step)) + 6));
  return Number(x.toFixed(digits));
}

/** True when the distribution holds a single value (nothing to sample). */
export function isSingle(d: Distribution): boolean {
  return d.type === 'categorical' ? d.choices.length === 1 : d.low === d.high;
}

export function toInternal(d: Distribution, value: ParamValue): number {
  if (d.type === 'categorical') {
    const i = d.choices.findIndex((c) => c === value);
    if (i < 0) throw new SearchSpaceError(`${JSON.stringify(value)} is not one of ${JSON.stringify(d.choices)}`);
    return i;
  }
  if (typeof value !== 'number') throw new SearchSpaceError(`${JSON.stringify(value)} is not a number`);
  return value;
}

export function toExternal(d: Distribution, internal: number): ParamValue {
  if (d.type === 'categorical') return at(d.choices, internal);
  if (d.type === 'int') return Math.round(internal);
  if (d.step !== null) return roundTo(internal, d.step);
  return internal;
}

export function contains(d: Distribution, internal: number): boolean {
  if (d.type === 'categorical') return Number.isInteger(internal) && internal >= 0 && internal < d.choices.length;
  if (!(internal >= d.low && internal <= d.high)) return false;
  if (d.type === 'int') return Number.isInteger(internal) && (internal - d.low) % d.step === 0;
  if (d.step !== null) return Math.abs((internal - d.low) / d.step - Math.round((internal - d.low) / d.step)) < 1e-8;
  return true;
}

export function sameDistribution(a: Distribution, b: Distribution): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Optuna's distribution_to_json form. */
export function toOptunaJson(d: Distribution): string {
  switch (d.type) {
    case 'float':
      return JSON.stringify({ name: 'FloatDistribution', attributes: { step: d.step, low: d.low, high: d.high, log: d.log } });
    case 'int':
      return JSON.stringify({ name: 'IntDistribution', attributes: { log: d.log, step: d.step, low: d.low, high: d.high } });
    case 'categorical':
      return JSON.stringify({ name: 'CategoricalDistribution', attributes: { choices: d.choices } });
  }
}

/** Reads a distribution back from its stored JSON (our own form). */
export function parseDistribution(json: string): Distribution {
  return JSON.parse(json) as Distribution;
}
