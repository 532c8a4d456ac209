// The lighter zoo models through the ONNX exporter on the first 200 test images
// (helpers/onnx-zoo.ts). tests/faults/onnx-zoo-full.test.ts does the others on 200 images
// and resnet18, mobilenet_v2 and vit on all 10,000.
import type { ZooName } from '../../src/index.js';
import { zooOnnxSuite } from '../helpers/onnx-zoo.js';

const LIGHT: ZooName[] = ['simple_conv_net', 'vit', 'mobilenet_v2', 'mobilenet_v3_small', 'squeezenet1_1', 'mnasnet0_5'];
const names = (process.env.ZOO_ONLY?.split(',') as ZooName[] | undefined) ?? LIGHT;
// Unfolded too where the family has batch norms after convolutions.
zooOnnxSuite(names, Number(process.env.ZOO_ONNX_IMAGES ?? 200), new Set<ZooName>(['mobilenet_v3_small', 'mnasnet0_5']));
