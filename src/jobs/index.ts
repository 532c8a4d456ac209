// Training jobs: the worker and the HTTP routes that queue runs for it.
export { runWorker, executeRun } from './worker.js';
export type { WorkerOptions, Outcome } from './worker.js';
export { checkJobConfig, defaultDataRoot } from './config.js';
export { jobsRoutes } from './routes.js';
export type { JobsOptions } from './routes.js';
