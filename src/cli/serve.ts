// `torchlet serve`: the HTTP API, its docs and the page, over the released weights (or
// yours), with dynamic batching; and, over a run store, training over HTTP (POST /runs),
// the dashboard, /predict?run=ID and a local worker process.
import cluster from 'node:cluster';
import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Command, Option } from 'commander';
import type { FastifyPluginAsync } from 'fastify';
import type { ModelName as ReleasedName } from '../models.js';
import { isModelName, models, type ModelName } from '../zoo/index.js';
import { setThreads } from '../runtime.js';
import { DEFAULT_BATCHING, DEFAULTS } from '../serve/defaults.js';
import type { LocalWorker } from '../jobs/local-worker.js';
import type { ModelRegistry, ServedModel } from '../serve/registry.js';
import { InputError, asInput, message, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from './common.js';

/** The models with released weights, the README's default first. */
const RELEASED: ReleasedName[] = ['super_light', 'lightest', 'light'];

interface ServeFlags {
  host: string;
  port: number;
  models: string;
  model?: string;
  weights?: string;
  ensemble?: string[];
  device: string;
  threads?: number;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  concurrency: number;
  queueTimeoutMs: number;
  bodyLimit: number;
  maxFiles: number;
  maxPixels: number;
  requestTimeoutMs: number;
  rateLimit: number;
  rateWindowMs: number;
  token?: string;
  web: boolean;
  logLevel: string;
  runs: boolean;
  store?: string;
  worker: boolean;
  dataRoot?: string;
  lease: number;
  processes: number;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the HTTP API (POST /predict), its docs (/docs) and the page to draw a digit on (/)')
    .option('--host <host>', 'interface to listen on; anything but loopback needs a token', DEFAULTS.host)
    .option('--port <port>', 'port (0: any free port)', nonNegativeInt('--port'), DEFAULTS.port)
    .option('--models <names>', `models to serve, comma-separated: those with released weights (${RELEASED.join(', ')}; the first is the default), or any model of the zoo given --model and --weights`, RELEASED.join(','))
    .option('--model <name>', 'the default model, for requests that name none (default: the first of --models)')
    .option('--weights <file>', 'serve these weights for the default model instead of the released ones')
    .option('--ensemble <file>', "also serve an ensemble described in YAML or JSON (as `torchlet ensemble --ensemble` takes), under its name; repeatable; --model may name it", (v: string, acc: string[] = []) => [...acc, v])
    .option('--device <device>', "'cpu', 'cuda', 'cuda:N' or 'auto'", 'cpu')
    .option('--processes <n>', 'server processes sharing the port (node:cluster), each with its own event loop and copy of the models', positiveInt('--processes'), 1)
    .option('--threads <n>', 'intra-op threads for passes over 64 images (default: one per core); smaller passes run on one thread', positiveInt('--threads'))
    .option('--max-batch <n>', 'most images in one forward pass (1 turns dynamic batching off)', positiveInt('--max-batch'), DEFAULT_BATCHING.maxBatch)
    .option('--max-delay-ms <ms>', 'longest a partial batch waits for more images while the model is busy', nonNegativeNumber('--max-delay-ms'), DEFAULT_BATCHING.maxDelayMs)
    .option('--max-queue <n>', 'images that may wait; more are answered 503', positiveInt('--max-queue'), DEFAULT_BATCHING.maxQueue)
    .option('--concurrency <n>', 'forward passes in flight at once per model', positiveInt('--concurrency'), DEFAULT_BATCHING.concurrency)
    .option('--queue-timeout-ms <ms>', 'an image waiting longer is answered 503 (0: never)', nonNegativeInt('--queue-timeout-ms'), DEFAULT_BATCHING.queueTimeoutMs)
    .option('--body-limit <bytes>', 'largest request body', positiveInt('--body-limit'), DEFAULTS.bodyLimit)
    .option('--max-files <n>', 'most files in one /predict/batch request', positiveInt('--max-files'), DEFAULTS.maxFiles)
    .option('--max-pixels <n>', 'largest image (width x height) a header may declare', positiveInt('--max-pixels'), DEFAULTS.maxPixels)
    .option('--request-timeout-ms <ms>', 'time allowed to receive a whole request (0: none)', nonNegativeInt('--request-timeout-ms'), DEFAULTS.requestTimeoutMs)
    .option('--rate-limit <n>', 'requests per client IP per window (0: no limit)', nonNegativeInt('--rate-limit'), DEFAULTS.rateLimit.max)
    .option('--rate-window-ms <ms>', 'the rate limit window', positiveInt('--rate-window-ms'), DEFAULTS.rateLimit.windowMs)
    .option('--token <token>', 'bearer token that POST requests must send (default: $TORCHLET_TOKEN); required off loopback')
    .option('--no-web', 'do not serve the page at /')
    .option('--store <url>', 'run store for the runs API and the dashboard: an SQLite file or postgres://... (default: TORCHLET_STORE or ./torchlet-runs/runs.db)')
    .option('--no-runs', 'no run store: no /runs API, no dashboard, no worker, no /predict?run=')
    .option('--no-worker', 'do not start the local worker (queued runs wait for `torchlet worker` processes)')
    .option('--data-root <dir>', 'the only folder a POSTed config may name data under (default: TORCHLET_DATA_ROOT or ./data)')
    .option('--lease <seconds>', "the local worker's lease: a run it stops renewing for this long is requeued", positiveNumber('--lease'), 30)
    .addOption(new Option('--log-level <level>', 'request log level').choices(['fatal', 'error', 'warn', 'info', 'debug']).default('warn'))
    .action(async (flags: ServeFlags) => {
      if (flags.processes > 1 && cluster.isPrimary) return runPrimary(flags);
      // A cluster's server process that cannot start must let go of the primary's channel,
      // or it would never exit.
      return runServe(flags).catch((err: unknown) => {
        cluster.worker?.disconnect();
        throw err;
      });
    });
}

/** The models to load and the default one: a model, or one of the ensembles' names. */
function parseModels(flags: ServeFlags, ensembles: string[]): { names: ModelName[]; main: string } {
  const names: ModelName[] = [];
  for (const n of flags.models.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!isModelName(n)) throw new InputError(`--models: unknown model '${n}'; choose from ${Object.keys(models).join(', ')}`);
    names.push(n);
  }
  const main = flags.model ?? names[0];
  if (main === undefined) throw new InputError('--models names no model');
  if (ensembles.includes(main)) {
    if (flags.weights !== undefined) throw new InputError(`--weights is for a model; '${main}' is an ensemble, whose members' weights its file names`);
    return { names, main };
  }
  if (!isModelName(main)) throw new InputError(`--model: unknown model '${main}'; choose from ${[...Object.keys(models), ...ensembles].join(', ')}`);
  const unique = [...new Set([main, ...names])];
  return { names: unique, main };
}

const log = (line: string): void => void process.stderr.write(`torchlet serve: ${line}\n`);

/** With --processes N: forks N copies of this command, which serve; this one only watches them. */
async function runPrimary(flags: ServeFlags): Promise<void> {
  const { runCluster } = await import('../serve/cluster.js');
  const url = await runCluster(flags.processes, log);
  process.stdout.write(`torchlet serve: listening on ${url} (${flags.processes} processes)\n`);
}

async function runServe(flags: ServeFlags): Promise<void> {
  // V8 allocates in old space what an allocation site's history says will live long. A
  // server's per-request objects are often alive at a scavenge (the request is in flight),
  // so V8 pretenured them: ~1 MB more old space per scavenge, scavenges of 2-4 ms instead
  // of ~1, and a mark-compact every few seconds. Off, a 28x28 upload at concurrency 16
  // served 19% more requests with half the p99 (--trace-gc under wrk; README, Serving speed).
  setFlagsFromString('--no-allocation-site-pretenuring');
  // After each mark-compact V8 sets the next old-space limit at live size x a factor it picks
  // from GC and mutator speeds; for this server it picked 1.1-1.2 (~38 MB live, 62 MB limit),
  // and a process could then lock into a full mark-compact every ~80 requests (280x280 at
  // concurrency 1, --trace-gc: 40-55 mark-compacts in 4 s in half the runs, p99 14-28 ms
  // against 3-4). A fixed 1.5 costs at most ~19 MB more heap; read at every mark-compact,
  // so it can be set here. 12 of 12 runs kept to scavenges (README, Serving speed).
  setFlagsFromString('--heap-growing-percent=50');
  // The server's modules (Fastify and its plugins) load only for this command, so that the
  // others start as fast as before.
  const [{ drainOnSignals, startServer }, { loadServedEnsemble, loadServedModel }, { ModelRegistry }, { isServeProcess, serveProcessIndex }] = await Promise.all([
    import('../serve/server.js'),
    import('../serve/models.js'),
    import('../serve/registry.js'),
    import('../serve/cluster.js'),
  ]);
  // In a cluster, each process counts its own clients' requests; the port's connections are
  // dealt round-robin, so a client's share of each process's limit is about 1/N of its requests.
  const rateLimit = Math.ceil(flags.rateLimit / flags.processes);
  const first = serveProcessIndex() === 0;
  const token = flags.token ?? (process.env.TORCHLET_TOKEN || undefined);
  if (flags.threads !== undefined) setThreads(flags.threads);
  const registry = new ModelRegistry({
    maxBatch: flags.maxBatch,
    maxDelayMs: flags.maxDelayMs,
    maxQueue: flags.maxQueue,
    concurrency: flags.concurrency,
    queueTimeoutMs: flags.queueTimeoutMs,
  });
  // Loaded first (their names may be --model's), registered after the models; disposed here until then.
  const ensembles: ServedModel[] = [];
  try {
    for (const path of flags.ensemble ?? []) ensembles.push(asInput(`cannot serve --ensemble '${path}'`, () => loadServedEnsemble(path, { device: flags.device })));
    const { names, main } = parseModels(flags, ensembles.map((e) => e.name));
    for (const name of names) {
      const weights = name === main ? flags.weights : undefined;
      const served = asInput(weights === undefined ? `cannot load ${name}` : `cannot load weights '${weights}' for --model ${name}`, () =>
        loadServedModel(name, { device: flags.device, ...(weights !== undefined && { weights }) }),
      );
      registry.add(served, { default: name === main });
    }
    for (const e of [...ensembles]) {
      asInput(`cannot serve --ensemble '${e.source}'`, () => registry.add(e, { default: e.name === main }));
      ensembles.shift();
    }
    const runs = flags.runs ? await openRuns(flags, registry) : undefined;
    const { app, url } = await startServer({
      registry,
      host: flags.host,
      port: flags.port,
      ...(token !== undefined && { token }),
      bodyLimit: flags.bodyLimit,
      maxFiles: flags.maxFiles,
      maxPixels: flags.maxPixels,
      requestTimeoutMs: flags.requestTimeoutMs,
      rateLimit: rateLimit === 0 ? false : { max: rateLimit, windowMs: flags.rateWindowMs },
      web: flags.web,
      logger: { level: flags.logLevel },
      plugins: runs ? [runs.plugin] : [],
      ...(runs && { runModel: runs.runModel }),
    }).catch(async (err: unknown) => {
      await runs?.close();
      throw new InputError(message(err));
    });
      if (runs && flags.worker && first) runs.startWorker(log);
    if (isServeProcess()) {
      // Ctrl-C reaches every process of the terminal's group: the primary answers it by
      // sending each server SIGTERM, and a server that also took SIGINT as its own would read
      // that SIGTERM as a second signal and stop without draining.
      process.on('SIGINT', () => undefined);
      drainOnSignals(app, registry, log, ['SIGTERM']);
    } else {
      drainOnSignals(app, registry, log);
    }
    if (!first) return;
    process.stdout.write(
      // In a cluster the primary says 'listening' once every process is.
      `torchlet serve: ${flags.processes > 1 ? `process 0 of ${flags.processes} ready on` : 'listening on'} ${url}\n` +
        `  page ${url}/   API docs ${url}/docs   OpenAPI ${url}/openapi.json   metrics ${url}/metrics\n` +
        `  models: ${registry.list().map((m) => `${m.name}${m.name === registry.default ? ' (default)' : ''}`).join(', ')}; ` +
        `batching: up to ${flags.maxBatch} images, ${flags.maxDelayMs} ms, queue ${flags.maxQueue}` +
        `${token !== undefined ? '; POST requests need the bearer token' : ''}\n` +
        (runs ? `  runs ${url}/runs   dashboard ${url}/dashboard   store ${runs.location}${flags.worker ? '; a local worker trains queued runs' : '; no local worker'}\n` : ''),
    );
  } catch (err) {
    for (const e of ensembles) e.dispose?.();
    await registry.close();
    throw err;
  }
}

interface Runs {
  location: string;
  plugin: FastifyPluginAsync;
  runModel: (run: string) => Promise<string>;
  startWorker(log: (line: string) => void): void;
  close(): Promise<void>;
}

/** The run store and what serve builds on it; the worker starts once the server listens. */
async function openRuns(flags: ServeFlags, registry: ModelRegistry): Promise<Runs> {
  const [{ openStore, DEFAULT_STORE }, { jobsRoutes, defaultDataRoot, runModels, startLocalWorker }, { dashboardRoutes }, { studyRoutes }] = await Promise.all([
    import('../store/index.js'),
    import('../jobs/index.js'),
    import('../dashboard/plugin.js'),
    import('../tune/web.js'),
  ]);
  const location = flags.store ?? (process.env.TORCHLET_STORE || DEFAULT_STORE);
  // The store is on by default, so its error says how to serve without it.
  const store = await openStore(location).catch((err: unknown) => Promise.reject(new InputError(`${message(err)} (to serve predictions only, without a run store: --no-runs)`)));
  const dataRoot = resolve(flags.dataRoot ?? defaultDataRoot());
  let worker: LocalWorker | undefined;
  const close = async (): Promise<void> => {
    await worker?.stop();
    await store.close();
  };
  return {
    location: store.location,
    plugin: async (app) => {
      await app.register(jobsRoutes, { store, dataRoot });
      await app.register(dashboardRoutes);
      await app.register(studyRoutes, { store });
      app.addHook('onClose', close);
    },
    runModel: runModels(store, registry, { device: flags.device }),
    startWorker: (log) => {
      // The worker is this same CLI (and node flags, e.g. tsx's loader) in a child process.
      worker = startLocalWorker({ cli: [process.execPath, ...process.execArgv, process.argv[1] ?? ''], store: location, dataRoot, leaseS: flags.lease, log });
    },
    close,
  };
}
