// The sampler benchmark's functions have their documented minima (so regrets are honest),
// and bench/tune_peer.py computes the same values as bench/tune-functions.ts.
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { branin, FUNCTIONS, hartmann6, mixed, rosenbrock } from '../../bench/tune-functions.js';
import { missing } from '../helpers/requires.js';

const hasOptuna = spawnSync('/usr/bin/python3', ['-c', 'import optuna'], { stdio: 'ignore' }).status === 0;
const optimum = (name: string): number => FUNCTIONS.find((f) => f.name === name)!.optimum;

describe('benchmark functions', () => {
  it('reach their documented minima at the known minimisers', () => {
    for (const [x, y] of [[-Math.PI, 12.275], [Math.PI, 2.275], [9.42478, 2.475]] as const) expect(branin(x, y)).toBeCloseTo(optimum('branin'), 5);
    expect(hartmann6([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])).toBeCloseTo(optimum('hartmann6'), 5);
    expect(Math.log1p(rosenbrock([1, 1, 1, 1, 1]))).toBe(optimum('rosenbrock5'));
    expect(mixed(1.5, 7, 'b')).toBe(optimum('mixed'));
  });

  it.skipIf(missing(hasOptuna, "Debian's python3-optuna"))('match the Python peer value for value', () => {
    const py = `
import sys; sys.path.insert(0, 'bench')
import tune_peer as p
class T:
    def __init__(self, v): self.v = v
    def suggest_float(self, n, lo, hi): return self.v[n]
    def suggest_int(self, n, lo, hi): return self.v[n]
    def suggest_categorical(self, n, c): return self.v[n]
import json
pts = json.loads(sys.argv[1])
print(json.dumps([getattr(p, f)(T(v)) for f, v in pts]))`;
    const points: [string, Record<string, number | string>][] = [
      ['branin', { x: 1.3, y: 4.2 }],
      ['hartmann6', { x0: 0.1, x1: 0.5, x2: 0.9, x3: 0.3, x4: 0.7, x5: 0.2 }],
      ['rosenbrock5', { x0: 0.5, x1: -1, x2: 1.5, x3: 0.1, x4: -2 }],
      ['mixed', { x: -2, n: 3, c: 'd' }],
    ];
    const want = JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, JSON.stringify(points)], { encoding: 'utf8' })) as number[];
    const fake = (v: Record<string, number | string>) =>
      ({ suggestFloat: (n: string) => v[n], suggestInt: (n: string) => v[n], suggestCategorical: (n: string) => v[n] }) as never;
    points.forEach(([name, v], i) => expect(FUNCTIONS.find((f) => f.name === name)!.objective(fake(v))).toBeCloseTo(want[i]!, 12));
  });
});
