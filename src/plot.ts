// Report charts: a Vega-Lite spec, rendered headlessly by Vega to SVG, rasterised to PNG by resvg.
import { Resvg } from '@resvg/resvg-js';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { EpochRecord } from './train.js';

// A font stack so resvg finds a sans-serif face on macOS, Windows and Linux alike.
const CONFIG = {
  font: 'Helvetica, Arial, DejaVu Sans, Liberation Sans, sans-serif',
  background: 'white',
  padding: 12,
  title: { fontSize: 16 },
  axis: { labelFontSize: 12, titleFontSize: 13 },
} as const;

async function renderPng(spec: TopLevelSpec): Promise<Buffer> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    // Vega only estimates text widths; resvg needs real fonts to draw the text at all.
    return new Resvg(svg, { font: { loadSystemFonts: true }, fitTo: { mode: 'zoom', value: 2 } }).render().asPng();
  } finally {
    view.finalize();
  }
}

/** A heatmap of counts[true][predicted], each cell labelled with its count. */
export function confusionMatrixPng(matrix: number[][], title: string, classNames?: string[]): Promise<Buffer> {
  const names = matrix.map((_, c) => classNames?.[c] ?? String(c));
  // Log-like colours, or the few errors off the diagonal vanish beside ~1,000 hits on it;
  // empty cells stay white, and text turns white where the colour passes the middle of the scale.
  const dark = Math.sqrt(Math.max(1, ...matrix.flat()) + 1) - 1;
  const values = matrix.flatMap((row, t) => row.map((count, p) => ({ actual: names[t], predicted: names[p], count })));
  const axis = (field: string, label: string) => ({ field, type: 'ordinal', sort: names, title: label }) as const;
  return renderPng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    config: CONFIG,
    data: { values },
    width: 40 * names.length,
    height: 40 * names.length,
    encoding: { x: { ...axis('predicted', 'predicted class'), axis: { labelAngle: 0, orient: 'top' } }, y: axis('actual', 'true class') },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: { condition: { test: 'datum.count === 0', value: 'white' }, field: 'count', type: 'quantitative', scale: { type: 'symlog', scheme: 'blues' }, legend: null },
        },
      },
      {
        mark: { type: 'text', fontSize: 11 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: `datum.count > ${dark}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  });
}

/** Two panels side by side, loss and accuracy per epoch, one coloured line per value of `color.field`. */
function lossAndAccuracyPng(values: object[], title: string, color: { field: string; order: string[] }, [lossTitle, accuracyTitle]: [string, string]): Promise<Buffer> {
  const panel = (field: 'loss' | 'accuracy', label: string) =>
    ({
      width: 360,
      height: 260,
      title: label,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1, format: 'd' } },
        y: { field, type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: color.field, type: 'nominal', sort: color.order, title: null },
      },
    }) as const;
  return renderPng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    config: CONFIG,
    data: { values },
    hconcat: [panel('loss', lossTitle), panel('accuracy', accuracyTitle)],
  });
}

/** Loss and accuracy per epoch, side by side, one line per split. */
export function trainingCurvesPng(records: EpochRecord[], title: string): Promise<Buffer> {
  const values = records.flatMap((r) => [
    { epoch: r.epoch, split: 'train', loss: r.trainLoss, accuracy: 100 * r.trainAccuracy },
    { epoch: r.epoch, split: 'test', loss: r.testLoss, accuracy: 100 * r.testAccuracy },
    ...(r.valAccuracy !== undefined ? [{ epoch: r.epoch, split: 'val', loss: r.valLoss, accuracy: 100 * r.valAccuracy }] : []),
  ]);
  return lossAndAccuracyPng(values, title, { field: 'split', order: ['train', 'test', 'val'] }, ['loss', 'accuracy (%)']);
}

/** Precision, recall and F1 for each class, grouped by class. */
export function classMetricsPng(perClass: { label: number; precision: number; recall: number; f1: number }[], title: string, classNames?: string[]): Promise<Buffer> {
  const names = perClass.map((m) => classNames?.[m.label] ?? String(m.label));
  const values = perClass.flatMap((m, i) => (['precision', 'recall', 'f1'] as const).map((metric) => ({ class: names[i], metric, value: m[metric] })));
  // The interesting part is the last percent or so: start the axis just below the worst score.
  const low = Math.max(0, Math.floor(20 * Math.min(...values.map((v) => v.value))) / 20 - 0.05);
  return renderPng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    config: CONFIG,
    data: { values },
    width: { step: 14 },
    height: 280,
    // Bars start below the axis' low end: clip them to the plot.
    mark: { type: 'bar', clip: true },
    encoding: {
      x: { field: 'class', type: 'ordinal', sort: names, title: 'class', axis: { labelAngle: 0 } },
      xOffset: { field: 'metric', sort: ['precision', 'recall', 'f1'] },
      y: { field: 'value', type: 'quantitative', title: null, scale: { domain: [low, 1] } },
      color: { field: 'metric', type: 'nominal', sort: ['precision', 'recall', 'f1'], title: null },
      tooltip: [{ field: 'value', format: '.4f' }],
    },
  });
}

/** Accuracy and macro precision, recall and F1, one group per model (an ensemble and its members side by side). */
export function overallMetricsPng(rows: { name: string; accuracy: number; precision: number; recall: number; f1: number }[], title: string): Promise<Buffer> {
  const metrics = ['accuracy', 'precision', 'recall', 'f1'] as const;
  const values = rows.flatMap((r) => metrics.map((metric) => ({ model: r.name, metric: metric === 'accuracy' ? metric : `macro ${metric}`, value: r[metric] })));
  const low = Math.max(0, Math.floor(20 * Math.min(...values.map((v) => v.value))) / 20 - 0.05);
  const order = metrics.map((m) => (m === 'accuracy' ? m : `macro ${m}`));
  return renderPng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    config: CONFIG,
    data: { values },
    width: { step: 22 },
    height: 280,
    layer: [
      {
        mark: { type: 'bar', clip: true },
        encoding: {
          x: { field: 'model', type: 'nominal', sort: rows.map((r) => r.name), title: null, axis: { labelAngle: 0 } },
          xOffset: { field: 'metric', sort: order },
          y: { field: 'value', type: 'quantitative', title: null, scale: { domain: [low, 1] } },
          color: { field: 'metric', type: 'nominal', sort: order, title: null },
        },
      },
    ],
  });
}

/** Test accuracy and loss per epoch of several runs, overlaid, one colour per run. */
export function compareCurvesPng(runs: { label: string; records: EpochRecord[] }[], title: string): Promise<Buffer> {
  const values = runs.flatMap((run) => run.records.map((r) => ({ run: run.label, epoch: r.epoch, loss: r.testLoss, accuracy: 100 * r.testAccuracy })));
  return lossAndAccuracyPng(values, title, { field: 'run', order: runs.map((r) => r.label) }, ['test loss', 'test accuracy (%)']);
}
