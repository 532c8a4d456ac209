// recalibrateBatchNorm against PyTorch's torch.optim.swa_utils.update_bn: after an epoch of
// augmented training, the running statistics torchlet keeps are the ones update_bn computes
// from the same weights over the same clean images in the same batches. Without it they are
// the momentum average over augmented batches, which update_bn does not reproduce.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRawDataset } from '../src/data/mnist.js';
import { Dataset, Model, train } from '../src/index.js';
import { tinyModels } from '../src/models.js';
import { pythonHas, runPythonJson } from './helpers/python.js';
import { missing } from './helpers/requires.js';

const N = 1024;
const BATCH = 128;
const dir = mkdtempSync(join(tmpdir(), 'torchlet-bn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PEER = `
import json, sys, torch
from torch.optim.swa_utils import update_bn
from tiny_models import MODELS
from torchlet_models import normalise
req = json.load(sys.stdin)
model = MODELS["tiny5k"]()
model.load_state_dict(torch.load(req["weights"], map_location="cpu"), strict=True)
saved = {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}
x = normalise(torch.tensor(req["pixels"], dtype=torch.uint8).view(-1, 1, 28, 28))
update_bn([x[i:i + req["batch"]] for i in range(0, len(x), req["batch"])], model)
fresh = {k: v for k, v in model.state_dict().items() if k in saved}
print(json.dumps({k: [saved[k].tolist(), fresh[k].tolist()] for k in saved}))
`;

/** The largest difference between the saved and update_bn's statistics, relative to each tensor's largest magnitude. */
function worstGap(stats: Record<string, [number[], number[]]>): number {
  let worst = 0;
  for (const [saved, fresh] of Object.values(stats)) {
    const scale = Math.max(1e-3, ...fresh.map(Math.abs));
    for (const [i, v] of fresh.entries()) worst = Math.max(worst, Math.abs((saved[i] ?? Number.NaN) - v) / scale);
  }
  return worst;
}

describe.skipIf(missing(pythonHas('torch'), '/usr/bin/python3 with torch'))('batch norm recalibration', () => {
  it("gives update_bn's statistics over the clean training images after augmented training", async () => {
    const { train: raw } = await loadRawDataset({});
    const pixels = raw.images.subarray(0, N * 784);
    using fit = Dataset.fromArrays(pixels, raw.labels.subarray(0, N), [N, 1, 28, 28]);
    using held = Dataset.fromArrays(raw.images.subarray(N * 784, (N + 256) * 784), raw.labels.subarray(N, N + 256), [256, 1, 28, 28]);
    const gaps: Record<string, number> = {};
    for (const recalibrateBatchNorm of [true, false]) {
      using model = new Model(tinyModels.tiny5k, { seed: 3 });
      await train(model, { train: fit, test: held }, { epochs: 1, batchSize: BATCH, aug: true, recalibrateBatchNorm, seed: 3, skipTrainEval: true });
      const weights = join(dir, `tiny5k-${recalibrateBatchNorm}.pt`);
      model.save(weights);
      const stats = runPythonJson<Record<string, [number[], number[]]>>(['-c', PEER], { weights, pixels: [...pixels], batch: BATCH });
      expect(Object.keys(stats)).toHaveLength(2 * tinyModels.tiny5k.layers.filter((l) => l.type === 'batchnorm2d').length);
      gaps[String(recalibrateBatchNorm)] = worstGap(stats);
    }
    console.log(`largest gap to update_bn's statistics, relative: recalibrated ${gaps.true?.toExponential(1)}, momentum average ${gaps.false?.toExponential(1)}`);
    expect(gaps.true).toBeLessThan(1e-4);
    expect(gaps.false).toBeGreaterThan(1e-2);
  });

  it('refuses to combine with a weight EMA, naming both', async () => {
    const { test: raw } = await loadRawDataset({});
    using data = Dataset.fromArrays(raw.images.subarray(0, 256 * 784), raw.labels.subarray(0, 256), [256, 1, 28, 28]);
    using model = new Model(tinyModels.tiny5k, { seed: 3 });
    await expect(train(model, { train: data, test: data }, { epochs: 1, recalibrateBatchNorm: true, ema: { decay: 0.99 } })).rejects.toThrow(
      "recalibrateBatchNorm does not combine with ema: the EMA averages batch norm's statistics itself",
    );
  });
});
