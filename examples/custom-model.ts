// Define a new architecture from layers, check its size without the addon, and train it.
// Run from a clone: npx tsx examples/custom-model.ts
import { countParams, defineModel, layers as L, loadMnist, Model, train } from 'torchlet';

// Two parallel branches (3x3 and 5x5) concatenated on channels, then global pooling.
const inception = defineModel('tiny_inception', [
  L.concat(L.sequential(L.conv2d(1, 6, 3, { padding: 1 }), L.relu()), L.sequential(L.conv2d(1, 2, 5, { padding: 2 }), L.relu())),
  L.batchNorm2d(8),
  L.maxPool2d(2), // 28 -> 14
  L.conv2d(8, 16, 3), L.batchNorm2d(16), L.relu(), // -> 12
  L.maxPool2d(2), // -> 6
  L.conv2d(16, 24, 3), L.batchNorm2d(24), L.relu(), // -> 4
  L.globalAvgPool(),
  L.flatten(),
  L.linear(24, 10),
  L.logSoftmax(),
]);

console.log(`tiny_inception: ${countParams(inception)} parameters`);
const data = await loadMnist({ trainLimit: 5_000, testLimit: 2_000 });
const model = new Model(inception, { seed: 1 });
const result = await train(model, data, { epochs: 1, skipTrainEval: true });
console.log(`after one epoch on 5,000 images: test accuracy ${(100 * result.final.testAccuracy).toFixed(2)}%`);
for (const x of [model, data.train, data.test]) x.dispose();
