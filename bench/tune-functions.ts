// The black-box functions of the sampler benchmark (bench/tune.ts), defined exactly as in
// bench/tune_peer.py: each suggests its parameters on a trial and returns the value to
// minimise; `optimum` is the known minimum, so regret = best value - optimum.
import type { Trial } from '../src/tune/index.js';

export interface BenchFunction {
  name: string;
  description: string;
  optimum: number;
  objective: (t: Trial) => number;
}

const H6_A = [
  [10, 3, 17, 3.5, 1.7, 8],
  [0.05, 10, 17, 0.1, 8, 14],
  [3, 3.5, 1.7, 10, 17, 8],
  [17, 8, 0.05, 10, 0.1, 14],
];
const H6_C = [1.0, 1.2, 3.0, 3.2];
const H6_P = [
  [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
  [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
  [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.665],
  [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];
const MIXED_OFFSET: Record<string, number> = { a: 2, b: 0, c: 1, d: 3 };

export function branin(x: number, y: number): number {
  const b = 5.1 / (4 * Math.PI ** 2);
  return (y - b * x * x + (5 / Math.PI) * x - 6) ** 2 + 10 * (1 - 1 / (8 * Math.PI)) * Math.cos(x) + 10;
}

export function hartmann6(x: number[]): number {
  let sum = 0;
  H6_C.forEach((c, i) => {
    let inner = 0;
    x.forEach((xj, j) => (inner += (H6_A[i]?.[j] ?? 0) * (xj - (H6_P[i]?.[j] ?? 0)) ** 2));
    sum += c * Math.exp(-inner);
  });
  return -sum;
}

export function rosenbrock(x: number[]): number {
  let f = 0;
  for (let i = 0; i + 1 < x.length; i++) f += 100 * ((x[i + 1] ?? 0) - (x[i] ?? 0) ** 2) ** 2 + (1 - (x[i] ?? 0)) ** 2;
  return f;
}

export function mixed(x: number, n: number, c: string): number {
  return (x - 1.5) ** 2 + (n - 7) ** 2 / 4 + (MIXED_OFFSET[c] ?? NaN);
}

export const FUNCTIONS: BenchFunction[] = [
  { name: 'branin', description: 'Branin (2 floats)', optimum: 0.397887357729738, objective: (t) => branin(t.suggestFloat('x', -5, 10), t.suggestFloat('y', 0, 15)) },
  {
    name: 'hartmann6',
    description: 'Hartmann-6 (6 floats in [0, 1])',
    optimum: -3.32236801141551,
    objective: (t) => hartmann6(Array.from({ length: 6 }, (_, i) => t.suggestFloat(`x${i}`, 0, 1))),
  },
  {
    name: 'rosenbrock5',
    description: 'Rosenbrock-5, log(1 + f) (5 floats in [-2.048, 2.048])',
    optimum: 0,
    objective: (t) => Math.log1p(rosenbrock(Array.from({ length: 5 }, (_, i) => t.suggestFloat(`x${i}`, -2.048, 2.048)))),
  },
  {
    name: 'mixed',
    description: 'mixed: (x - 1.5)^2 + (n - 7)^2 / 4 + offset(c), float x, int n in [1, 10], c in {a, b, c, d}',
    optimum: 0,
    objective: (t) => mixed(t.suggestFloat('x', -5, 5), t.suggestInt('n', 1, 10), t.suggestCategorical('c', ['a', 'b', 'c', 'd'])),
  },
];
