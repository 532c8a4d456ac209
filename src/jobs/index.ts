// Training jobs: the worker and the HTTP routes that queue runs for it.
export { runWorker, executeRun } from './worker.js';
export type { WorkerOptions, Outcome } from './worker.js';
export { checkJobConfig, defaultDataRoot } from './config.js';
export { jobsRoutes } from './routes.js';
export type { JobsOptions } from './routes.js';
export { runModels } from './run-models.js';
export type { RunModelOptions } from './run-models.js';
export { startLocalWorker } from './local-worker.js';
export type { LocalWorker, LocalWorkerOptions } from './local-worker.js';
