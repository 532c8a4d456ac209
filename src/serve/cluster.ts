// `torchlet serve --processes N`: N copies of the server sharing one port through
// node:cluster, each with its own event loop and its own copy of the models. One event loop
// tops out at about one core of HTTP parsing, multipart and image decoding, so a second
// process is what lets the server use the machine's other cores.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

const INDEX_ENV = 'TORCHLET_SERVE_PROCESS';
/** A process that dies this often within RESTART_WINDOW_MS is not restarted again. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
const METRICS_MESSAGE = 'torchlet:metrics';
const METRICS_TIMEOUT_MS = 6000;

interface MetricsMessage {
  type: typeof METRICS_MESSAGE;
  id: number;
  text?: string;
  error?: string;
}

const isMetricsMessage = (m: unknown): m is MetricsMessage => typeof m === 'object' && m !== null && (m as { type?: unknown }).type === METRICS_MESSAGE;

/** Which of the cluster's processes this is: 0 without a cluster. Process 0 alone runs the local training worker. */
export function serveProcessIndex(): number {
  return cluster.isWorker ? Number(process.env[INDEX_ENV] ?? 0) : 0;
}

/**
 * In a server process of a cluster: hands `registry` to prom-client's cluster aggregation
 * (the primary asks every process for its metrics and sums them). Elsewhere: nothing.
 */
export function joinClusterMetrics(registry: Registry): void {
  if (!cluster.isWorker) return;
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // its constructor starts answering the primary's requests
}

let nextRequest = 0;

/**
 * In a server process of a cluster: every process's metrics, aggregated by the primary, so
 * that a scrape that lands on any one process sees the whole server. Elsewhere: undefined.
 */
export function clusterMetrics(): Promise<string> | undefined {
  if (!cluster.isWorker) return undefined;
  const id = nextRequest++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error(`the primary process did not send the cluster's metrics within ${METRICS_TIMEOUT_MS / 1000} s`));
    }, METRICS_TIMEOUT_MS);
    const onMessage = (m: unknown): void => {
      if (!isMetricsMessage(m) || m.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (m.text !== undefined) resolve(m.text);
      else reject(new Error(`cannot aggregate the cluster's metrics: ${m.error ?? 'no answer'}`));
    };
    process.on('message', onMessage);
    process.send?.({ type: METRICS_MESSAGE, id } satisfies MetricsMessage);
  });
}

/** Whether this is one of a cluster's server processes (not the primary, not a lone server). */
export const isServeProcess = (): boolean => cluster.isWorker;

/** A server process exited before it listened; it has said why on stderr. */
export class ServeProcessExit extends Error {
  constructor(readonly code: number) {
    super(`a server process exited with code ${code} before listening`);
  }
}

/** Resolves with the address once `worker` listens; rejects with ServeProcessExit if it exits first. */
function listening(worker: Worker): Promise<string> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new ServeProcessExit(code || 1));
    worker.once('exit', onExit);
    worker.once('listening', (address) => {
      worker.off('exit', onExit);
      const host = address.address?.includes(':') ? `[${address.address}]` : address.address;
      resolve(`http://${host ?? '127.0.0.1'}:${address.port}`);
    });
  });
}

/**
 * Runs in the primary: forks `count` servers (this same command line), restarts one that dies,
 * and on SIGTERM or SIGINT lets each drain and exits 0 once all have. Resolves with the URL
 * once every process listens; rejects (after stopping the others) if any fails to start.
 */
export async function runCluster(count: number, log: (line: string) => void): Promise<string> {
  const live = new Map<number, Worker>();
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, m: unknown) => {
    if (!isMetricsMessage(m)) return;
    const answer = (reply: MetricsMessage): void => {
      if (worker.isConnected()) worker.send(reply);
    };
    aggregator.clusterMetrics().then(
      (text) => answer({ type: METRICS_MESSAGE, id: m.id, text }),
      (err: unknown) => answer({ type: METRICS_MESSAGE, id: m.id, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  const deaths: number[] = [];
  let stopping = false;
  let exitCode = 0;
  let started = false;
  const fork = (index: number): Worker => {
    const worker = cluster.fork({ [INDEX_ENV]: String(index) });
    live.set(index, worker);
    worker.on('exit', (code, signal) => {
      if (live.get(index) === worker) live.delete(index);
      if (stopping) {
        // A server that could not drain makes the whole server's exit a failure.
        if (code !== 0 && exitCode === 0) exitCode = 1;
        if (live.size === 0) process.exit(exitCode);
        return;
      }
      // A process that fails while the cluster starts fails the start (see below).
      if (!started) return;
      const now = Date.now();
      deaths.push(now);
      while (deaths.length > 0 && (deaths[0] ?? now) < now - RESTART_WINDOW_MS) deaths.shift();
      if (deaths.length > MAX_RESTARTS) {
        log(`server process ${index} died (${signal ?? `code ${code}`}); ${deaths.length} deaths within ${RESTART_WINDOW_MS / 1000} s: stopping`);
        stop('SIGTERM', 1);
        return;
      }
      log(`server process ${index} died (${signal ?? `code ${code}`}); restarting it`);
      fork(index);
    });
    return worker;
  };
  const stop = (signal: NodeJS.Signals, code: number): void => {
    if (stopping) {
      log(`${signal} again: exiting without waiting`);
      for (const w of live.values()) w.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    exitCode = code;
    if (live.size === 0) process.exit(code);
    for (const w of live.values()) w.process.kill('SIGTERM');
  };
  try {
    // Process 0 first, alone: a bad flag is then reported once, and --port 0 picks one port,
    // which the others share.
    const url = await listening(fork(0));
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => listening(fork(i + 1))));
    started = true;
    process.on('SIGTERM', () => stop('SIGTERM', 0)).on('SIGINT', () => stop('SIGINT', 0));
    return url;
  } catch (err) {
    // The primary exits with the failed process's code once the others are gone.
    stop('SIGTERM', err instanceof ServeProcessExit ? err.code : 1);
    throw err;
  }
}
