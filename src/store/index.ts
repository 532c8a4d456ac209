// The run store subsystem's surface.
export * from './store.js';
export { recordEvaluation } from './report.js';
export { SCHEMA_VERSION } from './migrations.js';
