// Train SuperLight briefly on part of MNIST, evaluate it, save PyTorch-loadable
// weights, load them back and classify one digit.
// Run from a clone: npx tsx examples/quickstart.ts
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist, Model, models, train } from 'torchlet';

const data = await loadMnist({ trainLimit: 10_000 });
const model = new Model(models.super_light, { device: 'auto', seed: 42 });
console.log(`SuperLight: ${model.numParams()} parameters on ${model.device}`);

const result = await train(model, data, {
  epochs: 2,
  aug: true,
  onEpoch: (r) => console.log(`epoch ${r.epoch}: test accuracy ${(100 * r.testAccuracy).toFixed(2)}%`),
});

const path = join(mkdtempSync(join(tmpdir(), 'torchlet-')), 'super_light.pt');
model.save(path); // torch.load(path) in Python gives the state_dict
const reloaded = Model.fromFile(models.super_light, path);
const { accuracy } = await reloaded.evaluate(data.test);
console.log(`reloaded weights: test accuracy ${(100 * accuracy).toFixed(2)}% (trained: ${(100 * result.final.testAccuracy).toFixed(2)}%)`);

// One 28x28 image as 784 uint8 pixels; here the first test image.
const first = await reloaded.evaluate(data.test.slice(0, 1));
console.log(`first test image: predicted ${first.predictions[0]}`);

for (const x of [model, reloaded, data.train, data.test]) x.dispose();
