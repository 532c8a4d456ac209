// Export to Optuna's JournalStorage file format (Optuna 3.1, JournalFileStorage): one JSON
// operation per line. Optuna's load_study then reads torchlet's study with every trial's
// parameters, distributions, values, intermediate values and state, so optuna-dashboard
// and Optuna's plots work on it.
import { toOptunaJson } from './distributions.js';
import type { Direction, FrozenTrial, JsonValue, StudyInfo, TrialState } from './types.js';

// Optuna's enums: JournalOperation, StudyDirection, TrialState.
const CREATE_STUDY = 0;
const SET_STUDY_USER_ATTR = 2;
const CREATE_TRIAL = 4;
const DIRECTION: Record<Direction, number> = { minimize: 1, maximize: 2 };
const STATE: Record<TrialState, number> = { running: 0, complete: 1, pruned: 2, failed: 3, waiting: 4 };
const WORKER = 'torchlet-export';

/** Optuna writes naive local datetimes; torchlet's are UTC, written without a zone. */
const isoNaive = (d: Date): string => d.toISOString().replace('Z', '000');

/** JSON with NaN and infinities as Python's json module writes and reads them (bare tokens). */
function pyJson(value: unknown): string {
  const SPECIAL = '\u0000py:';
  const text = JSON.stringify(value, (_k, v: unknown) =>
    typeof v === 'number' && !Number.isFinite(v) ? `${SPECIAL}${Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity'}` : v,
  );
  return text.replace(/"\\u0000py:(NaN|Infinity|-Infinity)"/g, '$1');
}

/** The journal lines (each a JSON object, newline-terminated) for one study. */
export function optunaJournal(study: StudyInfo, trials: readonly FrozenTrial[]): string {
  const lines: string[] = [];
  const op = (code: number, fields: Record<string, unknown>): void => {
    lines.push(pyJson({ op_code: code, worker_id: WORKER, ...fields }));
  };
  op(CREATE_STUDY, { study_name: study.name, directions: [DIRECTION[study.direction]] });
  for (const [key, value] of Object.entries(study.userAttrs)) op(SET_STUDY_USER_ATTR, { study_id: 0, user_attr: { [key]: value } });
  for (const t of [...trials].sort((a, b) => a.number - b.number)) {
    const fields: Record<string, unknown> = {
      study_id: 0,
      datetime_start: t.startedAt ? isoNaive(t.startedAt) : null,
      state: STATE[t.state],
      value: t.value,
      values: null,
      distributions: Object.fromEntries(Object.entries(t.distributions).map(([k, d]) => [k, toOptunaJson(d)])),
      params: { ...t.internalParams },
      user_attrs: t.userAttrs,
      system_attrs: t.systemAttrs as Record<string, JsonValue>,
      intermediate_values: Object.fromEntries(t.intermediate),
    };
    // Optuna reads datetime_complete whenever the key is present.
    if (t.completedAt) fields.datetime_complete = isoNaive(t.completedAt);
    op(CREATE_TRIAL, fields);
  }
  return lines.map((l) => `${l}\n`).join('');
}
