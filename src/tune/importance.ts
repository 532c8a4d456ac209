// A parameter-importance estimate for the study page: for each parameter, the correlation
// ratio eta^2 of the objective over groups of trials (a categorical's choices; a number's
// quartiles), i.e. the share of the objective's variance that the group means explain,
// normalised so that the parameters' shares sum to 1. Cheap, model-free, and honest about
// what it is: a one-parameter-at-a-time estimate that ignores interactions (unlike fANOVA).
import type { FrozenTrial } from './types.js';

export const IMPORTANCE_METHOD =
  "correlation ratio (eta squared) of the objective over each parameter's quartiles or choices, over complete trials, normalised to sum to 1; one parameter at a time, interactions ignored";

export function parameterImportance(trials: readonly FrozenTrial[]): Record<string, number> {
  const done = trials.filter((t) => t.state === 'complete' && t.value !== null && Number.isFinite(t.value));
  if (done.length < 4) return {};
  const values = done.map((t) => t.value ?? 0);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const total = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  const names = [...new Set(done.flatMap((t) => Object.keys(t.params)))].sort();
  const raw: Record<string, number> = {};
  for (const name of names) {
    const rows = done.filter((t) => name in t.internalParams).map((t) => ({ x: t.internalParams[name] ?? 0, v: t.value ?? 0, cat: t.distributions[name]?.type === 'categorical' }));
    if (rows.length < 4 || total === 0) continue;
    const groups = new Map<number, number[]>();
    if (rows[0]?.cat) {
      for (const r of rows) groups.set(r.x, [...(groups.get(r.x) ?? []), r.v]);
    } else {
      const sorted = [...rows].sort((a, b) => a.x - b.x);
      sorted.forEach((r, i) => {
        const q = Math.min(3, Math.floor((4 * i) / sorted.length));
        groups.set(q, [...(groups.get(q) ?? []), r.v]);
      });
    }
    let between = 0;
    for (const g of groups.values()) {
      const m = g.reduce((a, b) => a + b, 0) / g.length;
      between += g.length * (m - mean) ** 2;
    }
    raw[name] = between / total;
  }
  const sum = Object.values(raw).reduce((a, b) => a + b, 0);
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, sum > 0 ? v / sum : 0]));
}
