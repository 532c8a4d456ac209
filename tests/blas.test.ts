// The BLAS under libtorch sets the speed of every fully connected layer (README "BLAS on
// Debian"). The install hook asks the linker (blasOf) and the benchmarks ask the running
// process (loadedBlas); both must name the same library by the same rule.
import { describe, expect, it } from 'vitest';
import { loadedBlas } from '../bench/runner.js';
import { blasOf, findLibtorch, isReferenceBlas } from '../scripts/libtorch.mjs';
import { native } from '../src/index.js';

describe('BLAS detection', () => {
  it("names Debian's reference BLAS and only it", () => {
    expect(isReferenceBlas('/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0')).toBe(true);
    expect(isReferenceBlas('/usr/lib/aarch64-linux-gnu/blas/libblas.so.3')).toBe(true);
    expect(isReferenceBlas('/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3')).toBe(false);
    expect(isReferenceBlas('/opt/atlas/lib/libblas.so.3')).toBe(false);
  });

  it('the linker and the running process agree, and neither is the reference BLAS here', () => {
    native();
    const found = findLibtorch();
    expect(found).toBeDefined();
    const linked = blasOf(found!);
    const loaded = loadedBlas();
    if (linked === undefined) {
      expect(loaded).toMatch(/^none linked/);
      return;
    }
    // .ci/run and npm install's apt step install libopenblas0-openmp.
    expect(linked.reference).toBe(false);
    expect(linked.path).toContain(`/${loaded}/`);
  });
});
