// One SGD step from the same weights on both sides for the heavier zoo models, which
// tests/zoo.test.ts leaves out of `npm test` (helpers/zoo-interop.ts; it also repeats their
// parameter, key and logit checks).
import type { ZooName } from '../../src/zoo/index.js';
import { zooInteropSuite } from '../helpers/zoo-interop.js';

const HEAVY: ZooName[] = ['parallel_cnn', 'resnet34', 'mobilenet_v2', 'mobilenet_v3_large', 'squeezenet1_0', 'efficientnet_b0', 'efficientnet_b3', 'mnasnet1_0'];
zooInteropSuite(HEAVY, new Set(HEAVY));
