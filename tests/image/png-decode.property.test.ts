// Properties of the synchronous PNG reader: any small 8-bit image pngjs writes, with any row
// filter, reads back exactly; any damage to such a file (a byte changed, with or without its
// chunk's CRC made right again, or the file cut short) gives pixels, null (for sharp) or a
// PngDamage, never another error.
import fc from 'fast-check';
import { PNG } from 'pngjs';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodePng, PngDamage } from '../../src/image/png-decode.js';

interface Image {
  width: number;
  height: number;
  filterType: number;
  rgba: Uint8Array;
}

const image: fc.Arbitrary<Image> = fc
  .record({ width: fc.integer({ min: 1, max: 12 }), height: fc.integer({ min: 1, max: 12 }), filterType: fc.integer({ min: 0, max: 4 }) })
  .chain((s) => fc.uint8Array({ minLength: s.width * s.height * 4, maxLength: s.width * s.height * 4 }).map((rgba) => ({ ...s, rgba })));

function write({ width, height, filterType, rgba }: Image): Buffer {
  const png = new PNG({ width, height });
  png.data.set(rgba);
  return PNG.sync.write(png, { filterType });
}

/** Fixes the CRC of the chunk that holds byte `at`, if the file's chunk walk reaches it. */
function fixCrc(png: Buffer, at: number): void {
  for (let p = 8; p + 12 <= png.length; p += 12 + png.readUInt32BE(p)) {
    const end = p + 8 + png.readUInt32BE(p);
    if (end + 4 > png.length) return;
    if (at >= p + 4 && at < end) png.writeUInt32BE(crc32(png.subarray(p + 4, end)), end);
  }
}

function onlyDamage(bytes: Buffer): boolean {
  try {
    decodePng(bytes);
  } catch (err) {
    return err instanceof PngDamage;
  }
  return true;
}

describe('decodePng properties', () => {
  it('reads back what pngjs wrote, pixel for pixel, with every filter', () => {
    fc.assert(
      fc.property(image, (img) => {
        const out = decodePng(write(img));
        expect(out?.channels).toBe(4);
        expect(Buffer.from(out!.data).equals(Buffer.from(img.rgba))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a changed byte or a cut file gives pixels, null or PngDamage, nothing else', () => {
    fc.assert(
      fc.property(image, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), fc.boolean(), (img, where, xor, crc, cut) => {
        const png = write(img);
        const at = 8 + (where % (png.length - 8));
        if (cut) return onlyDamage(png.subarray(0, at));
        png[at] = (png[at] ?? 0) ^ xor;
        if (crc) fixCrc(png, at);
        return onlyDamage(png);
      }),
      { numRuns: 3000 },
    );
  });
});
