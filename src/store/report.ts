// A run's evaluation report: its best weights scored on the test set, per class, stored
// as the run's report.json artifact (the same fields as `torchlet evaluate --json`).
import type { Dataset } from '../dataset.js';
import { classificationReport, confusionMatrix } from '../metrics.js';
import type { Model } from '../model.js';
import type { RunStore } from './store.js';

export async function recordEvaluation(
  store: RunStore,
  runId: string,
  model: Model,
  bestWeights: string,
  test: Dataset,
  dataset: string,
): Promise<void> {
  model.load(bestWeights);
  const stats = await model.evaluate(test);
  const matrix = confusionMatrix(test.labels(), stats.predictions, 10);
  const report = {
    model: model.spec.name,
    weights: 'best.pt',
    dataset,
    device: model.device,
    count: stats.count,
    loss: stats.loss,
    ...classificationReport(matrix),
    confusionMatrix: matrix,
  };
  await store.putArtifact(runId, 'report.json', Buffer.from(`${JSON.stringify(report, null, 2)}\n`));
}
