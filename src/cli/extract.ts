// `torchlet extract`: writes one MNIST image as a PNG and prints its label.
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadRawDataset, type DatasetName } from '../data/mnist.js';
import { encodePng } from '../image/index.js';
import { InputError, asInput, nonNegativeInt, positiveInt } from './common.js';

const MAX_SCALE = 64;

interface ExtractFlags {
  index: number;
  split: 'train' | 'test';
  out?: string;
  scale: number;
  dataDir?: string;
  dataset: DatasetName;
}

export function registerExtract(program: Command): void {
  program
    .command('extract')
    .description('write one MNIST image as a PNG and print its label')
    .requiredOption('--index <n>', 'which image, from 0', nonNegativeInt('--index'))
    .addOption(new Option('--split <split>', 'which split').choices(['train', 'test']).default('test'))
    .option('--out <file>', 'where the PNG goes (default: <dataset>-<split>-<index>.png)')
    .option('--scale <k>', `enlarge each pixel to k x k (1-${MAX_SCALE})`, scale, 1)
    .option('--data-dir <dir>', 'folder holding the four IDX .gz files (default: data/mnist, TORCHLET_DATA, or the download cache)')
    .addOption(new Option('--dataset <name>', 'dataset').choices(['mnist', 'fashion-mnist']).default('mnist'))
    .action(async (flags: ExtractFlags) => {
      await runExtract(flags);
    });
}

function scale(value: string): number {
  const k = positiveInt('--scale')(value);
  if (k > MAX_SCALE) throw new InvalidArgumentError(`--scale must be at most ${MAX_SCALE}, got ${k}`);
  return k;
}

/** Nearest-neighbour enlargement: every pixel becomes a k x k block, so the digit stays exact. */
function enlarge(pixels: Uint8Array, width: number, height: number, k: number): Uint8Array {
  if (k === 1) return pixels;
  const out = new Uint8Array(width * k * height * k);
  for (let y = 0; y < height * k; y++) {
    const src = Math.floor(y / k) * width;
    for (let x = 0; x < width * k; x++) out[y * width * k + x] = pixels[src + Math.floor(x / k)] ?? 0;
  }
  return out;
}

async function runExtract(flags: ExtractFlags): Promise<void> {
  const raw = await loadRawDataset({ dataset: flags.dataset, ...(flags.dataDir !== undefined && { dataDir: flags.dataDir }) });
  const split = raw[flags.split];
  if (flags.index >= split.count) {
    throw new InputError(`--index ${flags.index} is out of range: the ${flags.split} split has ${split.count} images (0-${split.count - 1})`);
  }
  const size = split.rows * split.cols;
  const pixels = split.images.subarray(flags.index * size, (flags.index + 1) * size);
  const out = flags.out ?? `${flags.dataset}-${flags.split}-${flags.index}.png`;
  const png = encodePng(enlarge(pixels, split.cols, split.rows, flags.scale), split.cols * flags.scale, split.rows * flags.scale);
  asInput(`cannot write '${out}'`, () => writeFileSync(out, png));
  const label = split.labels[flags.index] ?? 0;
  process.stdout.write(`${label}\n`);
  process.stderr.write(`wrote ${out} (${flags.split} image ${flags.index}, label ${label})\n`);
}
