// Figure 4: single-image prediction latency, torchlet against PyTorch.
import { z } from 'zod';
import type { RawSplit } from '../src/data/mnist.js';
import { Model, superLight } from '../src/index.js';
import { fixed, log, quantile, SEED, type Options, type PythonWorker } from './runner.js';

export const PredictRun = z.object({ latencies_ns: z.array(z.number()), checksum: z.number() });

export interface LatencyData {
  torchletP50: number[];
  torchletP99: number[];
  pytorchP50: number[];
  pytorchP99: number[];
  torchletAll: number[];
  pytorchAll: number[];
  /** Sum of the predicted digits, so that no prediction is dead code. */
  checksum: number;
}

export async function latencyFigure(opts: Options, py: PythonWorker, test: RawSplit): Promise<LatencyData> {
  const pixels = test.rows * test.cols;
  // Decoded images, each its own buffer, made outside the timed region.
  const images = Array.from({ length: Math.min(test.count, opts.latencyCount + opts.latencyWarm) }, (_, i) =>
    test.images.slice(i * pixels, (i + 1) * pixels),
  );
  const model = new Model(superLight, { seed: SEED });
  const out: LatencyData = { torchletP50: [], torchletP99: [], pytorchP50: [], pytorchP99: [], torchletAll: [], pytorchAll: [], checksum: 0 };
  let checksum = 0;
  const torchletRun = (count: number, offset: number): number[] => {
    const ns: number[] = [];
    for (let i = 0; i < count; i++) {
      const image = images[(offset + i) % images.length] ?? new Uint8Array(pixels);
      const t0 = process.hrtime.bigint();
      checksum += model.predict(image).digit;
      ns.push(Number(process.hrtime.bigint() - t0));
    }
    return ns;
  };
  try {
    torchletRun(opts.latencyWarm, 0);
    await py.request(PredictRun, { cmd: 'predict_run', count: opts.latencyWarm, offset: 0 });
    for (let r = 0; r < opts.shortReps; r++) {
      const t = torchletRun(opts.latencyCount, opts.latencyWarm);
      const p = (await py.request(PredictRun, { cmd: 'predict_run', count: opts.latencyCount, offset: opts.latencyWarm })).latencies_ns;
      out.torchletP50.push(quantile(t, 0.5) / 1e3);
      out.torchletP99.push(quantile(t, 0.99) / 1e3);
      out.pytorchP50.push(quantile(p, 0.5) / 1e3);
      out.pytorchP99.push(quantile(p, 0.99) / 1e3);
      out.torchletAll.push(...t.map((x) => x / 1e3));
      out.pytorchAll.push(...p.map((x) => x / 1e3));
      log(
        `  predict rep ${r + 1}/${opts.shortReps}: torchlet p50 ${fixed(1)(out.torchletP50.at(-1) ?? NaN)} p99 ${fixed(1)(out.torchletP99.at(-1) ?? NaN)} | ` +
          `PyTorch p50 ${fixed(1)(out.pytorchP50.at(-1) ?? NaN)} p99 ${fixed(1)(out.pytorchP99.at(-1) ?? NaN)} µs`,
      );
    }
  } finally {
    model.dispose();
  }
  out.checksum = checksum;
  return out;
}
