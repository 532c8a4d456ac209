// `torchlet export`: writes saved weights as an ONNX file that any ONNX runtime can run.
import { Command, Option } from 'commander';
import { exportOnnx, IR_VERSION, OnnxExportError, OPSET } from '../export/onnx.js';
import { Model } from '../model.js';
import { isModelName as isReleased } from '../models.js';
import { models, type ModelName } from '../zoo/index.js';
import { releasedWeightsPath } from '../weights.js';
import { InputError, loadWeights, message } from './common.js';

interface ExportFlags {
  model: ModelName;
  weights?: string;
  format: 'onnx';
  out: string;
  foldBatchnorm: boolean;
  includePreprocessing?: boolean;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(`write saved weights as an ONNX model (IR ${IR_VERSION}, opset ${OPSET}, eval mode, dynamic batch)`)
    .addOption(new Option('--model <name>', 'architecture the weights belong to').choices(Object.keys(models)).makeOptionMandatory())
    .option('--weights <file>', "a state_dict for --model (default: the model's released weights, shipped with torchlet)")
    .addOption(new Option('--format <format>', 'output format').choices(['onnx']).default('onnx'))
    .requiredOption('--out <file>', 'the file to write, e.g. model.onnx')
    .option('--no-fold-batchnorm', 'keep each batch norm as its own node instead of folding it into the convolution before it')
    .option('--include-preprocessing', 'take uint8 pixels (0-255) and normalise them inside the graph')
    .action((flags: ExportFlags) => {
      runExport(flags);
    });
}

function runExport(flags: ExportFlags): void {
  if (flags.weights === undefined && !isReleased(flags.model)) throw new InputError(`--model ${flags.model} has no released weights; pass --weights <file>`);
  const spec = models[flags.model];
  const model = new Model(spec);
  try {
    loadWeights(model, flags.model, flags.weights ?? releasedWeightsPath(flags.model as Parameters<typeof releasedWeightsPath>[0]));
    const bytes = exportOnnx(model, flags.out, { foldBatchNorm: flags.foldBatchnorm, includePreprocessing: flags.includePreprocessing ?? false });
    const { channels, height, width, mean, std } = spec.input;
    const input = flags.includePreprocessing
      ? `'pixels' uint8 [batch, ${channels}, ${height}, ${width}] (0-255, normalised in the graph)`
      : `'input' float32 [batch, ${channels}, ${height}, ${width}]` + (mean && std ? `, normalised as (pixel / 255 - ${mean.join('/')}) / ${std.join('/')}` : '');
    process.stdout.write(
      `wrote ${flags.out} (${bytes} bytes, ${model.numParams()} parameters; IR ${IR_VERSION}, opset ${OPSET}` +
        `${flags.foldBatchnorm ? ', batch norm folded' : ''})\ninput ${input}\n`,
    );
  } catch (err) {
    if (err instanceof OnnxExportError) throw new InputError(`cannot export --model ${flags.model}: ${message(err)}`);
    throw err;
  } finally {
    model.dispose();
  }
}
