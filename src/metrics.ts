// Classification metrics from predicted labels: a confusion matrix and the per-class
// precision/recall/F1 derived from it, as sklearn's classification_report defines them.

export interface ClassMetrics {
  label: number;
  precision: number;
  recall: number;
  f1: number;
  /** How many samples truly belong to this class. */
  support: number;
}

export interface ClassificationReport {
  accuracy: number;
  /** Unweighted means over classes, so rare classes count as much as common ones. */
  macro: { precision: number; recall: number; f1: number };
  perClass: ClassMetrics[];
}

/** counts[t][p]: how many samples of true class t were predicted as p. */
export function confusionMatrix(labels: Uint8Array, predictions: Uint8Array, classes: number): number[][] {
  if (labels.length !== predictions.length) throw new RangeError(`${labels.length} labels but ${predictions.length} predictions`);
  const matrix = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  labels.forEach((t, i) => {
    const p = predictions[i] ?? classes;
    const row = matrix[t];
    if (row === undefined || p >= classes) throw new RangeError(`sample ${i}: label ${t} or prediction ${p} is not below ${classes}`);
    row[p] = (row[p] ?? 0) + 1;
  });
  return matrix;
}

// 0/0 is 0 (sklearn's zero_division=0): a class never predicted, or never present, scores nothing.
const ratio = (num: number, den: number): number => (den === 0 ? 0 : num / den);
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]): number => ratio(sum(xs), xs.length);

export function classificationReport(matrix: number[][]): ClassificationReport {
  const cell = (t: number, p: number): number => matrix[t]?.[p] ?? 0;
  const perClass = matrix.map((row, c): ClassMetrics => {
    const hits = cell(c, c);
    const predicted = sum(matrix.map((_, t) => cell(t, c)));
    const support = sum(row);
    const precision = ratio(hits, predicted);
    const recall = ratio(hits, support);
    return { label: c, precision, recall, f1: ratio(2 * precision * recall, precision + recall), support };
  });
  return {
    accuracy: ratio(sum(perClass.map((m) => cell(m.label, m.label))), sum(perClass.map((m) => m.support))),
    // Macro F1 averages the per-class F1s (as sklearn does), not the F1 of the macro precision and recall.
    macro: { precision: mean(perClass.map((m) => m.precision)), recall: mean(perClass.map((m) => m.recall)), f1: mean(perClass.map((m) => m.f1)) },
    perClass,
  };
}

/** The report as a table, then the confusion matrix with true classes down and predictions across. */
export function formatReport(report: ClassificationReport, matrix: number[][], classNames?: string[]): string {
  // Named classes keep their index beside the name, and the matrix's columns use the index
  // alone, so that long names do not stretch every column.
  const name = (c: number): string => (classNames?.[c] === undefined ? String(c) : `${c} ${classNames[c]}`);
  const total = sum(report.perClass.map((m) => m.support));
  const correct = sum(report.perClass.map((m) => matrix[m.label]?.[m.label] ?? 0));
  const f = (x: number): string => x.toFixed(4).padStart(9);

  const nameWidth = Math.max(9, ...matrix.map((_, c) => name(c).length));
  const row = (label: string, cells: string[]): string => `${label.padStart(nameWidth)} ${cells.join(' ')}`.trimEnd();
  const table = [
    row('class', ['precision', '   recall', '       f1', '  support']),
    ...report.perClass.map((m) => row(name(m.label), [f(m.precision), f(m.recall), f(m.f1), String(m.support).padStart(9)])),
    '',
    row('macro avg', [f(report.macro.precision), f(report.macro.recall), f(report.macro.f1), String(total).padStart(9)]),
  ];

  const cellWidth = Math.max(...matrix.flat().map((n) => String(n).length), String(matrix.length - 1).length);
  const matrixLines = [
    row('true\\pred', matrix.map((_, c) => String(c).padStart(cellWidth))),
    ...matrix.map((counts, t) => row(name(t), counts.map((n) => String(n).padStart(cellWidth)))),
  ];

  return [
    `accuracy ${(100 * report.accuracy).toFixed(2)}% (${correct}/${total})`,
    `macro precision ${report.macro.precision.toFixed(4)}, recall ${report.macro.recall.toFixed(4)}, f1 ${report.macro.f1.toFixed(4)}`,
    '',
    ...table,
    '',
    'confusion matrix (rows: true class, columns: predicted class)',
    ...matrixLines,
  ].join('\n');
}

/** Mean, sample standard deviation (n - 1), min and max of one figure over seeds. */
export function seedSpread(values: number[]): { mean: number; sd: number; min: number; max: number } {
  if (values.length === 0) throw new RangeError('seedSpread: no values');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = values.length < 2 ? Number.NaN : Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1));
  return { mean, sd, min: Math.min(...values), max: Math.max(...values) };
}
