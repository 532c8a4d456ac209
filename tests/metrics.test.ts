import { describe, expect, it } from 'vitest';
import { classificationReport, confusionMatrix, formatReport } from '../src/metrics.js';

// Three classes; class 2 is present once but never predicted.
//   true:      0 0 0 1 1 2
//   predicted: 0 0 1 1 1 0
const labels = Uint8Array.from([0, 0, 0, 1, 1, 2]);
const predictions = Uint8Array.from([0, 0, 1, 1, 1, 0]);

describe('confusionMatrix', () => {
  it('counts true classes down and predictions across', () => {
    expect(confusionMatrix(labels, predictions, 3)).toEqual([
      [2, 1, 0],
      [0, 2, 0],
      [1, 0, 0],
    ]);
  });

  it('rejects mismatched lengths and out-of-range classes', () => {
    expect(() => confusionMatrix(labels, predictions.subarray(1), 3)).toThrow(RangeError);
    expect(() => confusionMatrix(Uint8Array.from([3]), Uint8Array.from([0]), 3)).toThrow(/label 3/);
    expect(() => confusionMatrix(Uint8Array.from([0]), Uint8Array.from([5]), 3)).toThrow(/prediction 5/);
  });
});

describe('classificationReport', () => {
  const report = classificationReport(confusionMatrix(labels, predictions, 3));

  it('scores each class by hand', () => {
    // class 0: 2 of 3 predicted-0 are right, 2 of 3 true-0 found; class 1: 2/3 and 2/2.
    expect(report.perClass[0]).toEqual({ label: 0, precision: 2 / 3, recall: 2 / 3, f1: expect.closeTo(2 / 3, 12), support: 3 });
    expect(report.perClass[1]).toEqual({ label: 1, precision: 2 / 3, recall: 1, f1: expect.closeTo(0.8, 12), support: 2 });
  });

  it('scores a class that is never predicted as 0, not NaN', () => {
    expect(report.perClass[2]).toEqual({ label: 2, precision: 0, recall: 0, f1: 0, support: 1 });
  });

  it('averages classes without weighting, and F1 per class before averaging', () => {
    expect(report.accuracy).toBeCloseTo(4 / 6, 12);
    expect(report.macro.precision).toBeCloseTo((2 / 3 + 2 / 3 + 0) / 3, 12);
    expect(report.macro.recall).toBeCloseTo((2 / 3 + 1 + 0) / 3, 12);
    expect(report.macro.f1).toBeCloseTo((2 / 3 + 0.8 + 0) / 3, 12);
  });

  it('is perfect on a perfect diagonal and all zeros on an empty matrix', () => {
    const perfect = classificationReport([
      [5, 0],
      [0, 7],
    ]);
    expect(perfect.accuracy).toBe(1);
    expect(perfect.macro).toEqual({ precision: 1, recall: 1, f1: 1 });
    const empty = classificationReport([
      [0, 0],
      [0, 0],
    ]);
    expect(empty.accuracy).toBe(0);
    expect(empty.macro).toEqual({ precision: 0, recall: 0, f1: 0 });
  });
});

describe('formatReport', () => {
  const matrix = confusionMatrix(labels, predictions, 3);
  const text = formatReport(classificationReport(matrix), matrix);

  it('states accuracy and macro averages', () => {
    expect(text).toContain('accuracy 66.67% (4/6)');
    expect(text).toMatch(/macro avg\s+0\.4444\s+0\.5556\s+0\.4889\s+6/);
  });

  it('prints the confusion matrix as aligned rows', () => {
    const lines = text.split('\n');
    const start = lines.findIndex((l) => l.startsWith('confusion matrix'));
    const rows = lines.slice(start + 1, start + 5);
    expect(rows.map((r) => r.trim().split(/\s+/))).toEqual([
      ['true\\pred', '0', '1', '2'],
      ['0', '2', '1', '0'],
      ['1', '0', '2', '0'],
      ['2', '1', '0', '0'],
    ]);
    expect(new Set(rows.map((r) => r.length)).size).toBe(1);
  });

  it('uses class names when given', () => {
    expect(formatReport(classificationReport(matrix), matrix, ['cat', 'dog', 'emu'])).toMatch(/^\s+2 emu\s+1\s+0\s+0$/m);
  });
});
