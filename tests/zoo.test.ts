// Every zoo model against its PyTorch twin (helpers/zoo-interop.ts): parameter counts and
// state_dict keys, weights both ways with equal logits on real MNIST images, and one SGD
// step from the same weights for the lighter models. tests/faults/zoo-steps.test.ts takes
// the step for the heavier ones (they would add minutes to `npm test` on two cores).
import { expect, it } from 'vitest';
import { countParams } from '../src/spec.js';
import { zoo, type ZooName } from '../src/zoo/index.js';
import { zooInteropSuite } from './helpers/zoo-interop.js';

const LIGHT_STEPS: ZooName[] = ['simple_conv_net', 'vit', 'mobilenet_v3_small', 'squeezenet1_1', 'mnasnet0_5', 'resnet18'];

const names = (process.env.ZOO_ONLY?.split(',') ?? Object.keys(zoo)) as ZooName[];
zooInteropSuite(names, new Set(process.env.ZOO_STEPS?.split(',') ?? LIGHT_STEPS) as ReadonlySet<ZooName>);

it("simple_conv_net has pytorch/examples' 1,199,882 parameters", () => {
  expect(countParams(zoo.simple_conv_net())).toBe(1_199_882);
});
