// The page's "in this browser" mode, bundled for the page (src/serve/inbrowser.ts builds it):
// the server's own preprocessing (src/image/mnistify.ts, the same module, not a copy) and
// the model exported to ONNX, run by onnxruntime-web's WebAssembly build. torchlet serves
// every file this needs, so once the model is loaded no prediction touches the network.
import * as ort from 'onnxruntime-web';
import { preprocessPixels, type Channels } from '../image/mnistify.js';

/** Pixels as a canvas's ImageData holds them (RGBA, row-major). */
export interface Pixels {
  data: Uint8ClampedArray | Uint8Array;
  width: number;
  height: number;
}

export interface BrowserPrediction {
  digit: number;
  confidence: number;
  probabilities: number[];
  /** The 28x28 image the model saw, 0-255, light ink on black. */
  pixels: Uint8Array;
  inverted: boolean;
  /** Preprocessing and inference, in milliseconds. */
  timeMs: number;
}

const sessions = new Map<string, Promise<ort.InferenceSession>>();

/** Where torchlet serves onnxruntime-web's files; one thread, since the page is not cross-origin isolated. */
export function configure(wasmBase: string): void {
  ort.env.wasm.wasmPaths = wasmBase;
  ort.env.wasm.numThreads = 1;
}

/** Fetches a served model's ONNX file once and starts a session on it. */
export function load(model: string): Promise<ort.InferenceSession> {
  let session = sessions.get(model);
  if (!session) {
    session = (async () => {
      const res = await fetch(`/models/${encodeURIComponent(model)}/model.onnx`);
      if (!res.ok) {
        const body = (await res.json().catch(() => null)) as { message?: string } | null;
        throw new Error(body?.message ?? `the server answered ${res.status} for the model's ONNX file`);
      }
      return ort.InferenceSession.create(new Uint8Array(await res.arrayBuffer()));
    })();
    sessions.set(model, session);
    session.catch(() => sessions.delete(model));
  }
  return session;
}

/** Preprocessing alone, for comparing with the server's. */
export function preprocess(image: Pixels, channels: Channels = 4) {
  return preprocessPixels(image.data, image.width, image.height, channels);
}

/** Classifies one image entirely in this browser. */
export async function predict(model: string, image: Pixels): Promise<BrowserPrediction> {
  const session = await load(model);
  const start = performance.now();
  const seen = preprocess(image);
  const input = session.inputNames[0];
  const output = session.outputNames[0];
  if (input === undefined || output === undefined) throw new Error('the ONNX model has no input or no output');
  // The served file takes uint8 pixels and normalises inside the graph, as the weights were trained.
  const result = await session.run({ [input]: new ort.Tensor('uint8', seen.pixels, [1, 1, 28, 28]) });
  const logProbs = result[output]?.data;
  if (!(logProbs instanceof Float32Array)) throw new Error('the ONNX model did not return float32 log-probabilities');
  const probabilities = Array.from(logProbs, Math.exp);
  const digit = probabilities.indexOf(Math.max(...probabilities));
  return { digit, confidence: probabilities[digit] ?? 0, probabilities, pixels: seen.pixels, inverted: seen.inverted, timeMs: performance.now() - start };
}
