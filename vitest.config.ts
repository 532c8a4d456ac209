import { defineConfig } from 'vitest/config';

// Native training is CPU-heavy and the machine has two cores: run test files one at a
// time so that timings and the async-responsiveness checks are not starved.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    exclude: ['tests/faults/**'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
