import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { gzipSync } from 'node:zlib';
import { DataError } from '../../src/data/errors.js';
import { encodeIdx, gunzip, parseIdx } from '../../src/data/idx.js';

/** Valid IDX contents: 1-4 small dims and exactly as many data bytes as they require. */
const idxArray = fc
  .array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 })
  .chain((dims) =>
    fc.record({
      dims: fc.constant(dims),
      data: fc.uint8Array({ minLength: dims.reduce((a, b) => a * b, 1), maxLength: dims.reduce((a, b) => a * b, 1) }),
    }),
  );

function onlyDataErrors(bytes: Uint8Array): boolean {
  try {
    parseIdx(bytes, 'fuzz');
  } catch (err) {
    return err instanceof DataError;
  }
  return true;
}

describe('IDX properties', () => {
  it('random bytes never throw anything but DataError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), onlyDataErrors), { numRuns: 2000 });
  });

  it('random bytes behind a plausible header never throw anything but DataError', () => {
    const header = fc.tuple(fc.constantFrom(0, 1), fc.constantFrom(0x08, 0x0d), fc.integer({ min: 0, max: 6 }));
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 64 }), ([zero, dtype, rank], rest) =>
        onlyDataErrors(Uint8Array.from([0, zero, dtype, rank, ...rest])),
      ),
      { numRuns: 2000 },
    );
  });

  it('valid encodings round-trip exactly', () => {
    fc.assert(
      fc.property(idxArray, ({ dims, data }) => {
        expect(parseIdx(encodeIdx(dims, data), 'rt')).toEqual({ dims, data });
      }),
    );
  });

  it('valid encodings round-trip through gzip', async () => {
    await fc.assert(
      fc.asyncProperty(idxArray, async ({ dims, data }) => {
        expect(parseIdx(await gunzip(gzipSync(encodeIdx(dims, data)), 'gz'), 'gz')).toEqual({ dims, data });
      }),
      { numRuns: 50 },
    );
  });

  it('every strict prefix and every extension of a valid file is rejected', () => {
    fc.assert(
      fc.property(idxArray, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }), ({ dims, data }, cut, extra) => {
        const bytes = encodeIdx(dims, data);
        expect(() => parseIdx(bytes.subarray(0, cut % bytes.length), 'cut')).toThrow(DataError);
        expect(() => parseIdx(Uint8Array.from([...bytes, ...extra]), 'long')).toThrow(/trailing bytes/);
      }),
    );
  });
});
