import { defineConfig } from 'tsup';

export default defineConfig([
  // The library: ESM and CJS with type declarations for both.
  {
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    shims: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
  },
  // The CLI uses top-level await, so it is ESM only.
  {
    entry: { 'cli/main': 'src/cli/main.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
  },
]);
