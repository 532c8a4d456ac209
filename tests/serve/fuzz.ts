// Fuzzed request bodies for the server: random bytes, PNGs with corrupted chunks (with and
// without a repaired CRC), truncated files, huge declared sizes, broken multipart and
// JSON. Deterministic for a seed, so a failure can be replayed.
import { crc32 } from 'node:zlib';
import { multipart } from './helpers.js';
import { mulberry32 } from '../../src/split.js';

export interface FuzzCase {
  kind: string;
  contentType: string | undefined;
  body: Buffer;
  /** False only where a mutation may leave a decodable image (then 200 is a right answer too). */
  mustRefuse: boolean;
}

/** Cases are reproducible from their seed: the split's PRNG. */
export const rng = mulberry32;

interface Chunk {
  type: string;
  start: number;
  length: number;
}

function pngChunks(png: Buffer): Chunk[] {
  const chunks: Chunk[] = [];
  for (let at = 8; at + 12 <= png.length; ) {
    const length = png.readUInt32BE(at);
    chunks.push({ type: png.toString('latin1', at + 4, at + 8), start: at, length });
    at += 12 + length;
  }
  return chunks;
}

function fixCrc(png: Buffer, c: Chunk): void {
  png.writeUInt32BE(crc32(png.subarray(c.start + 4, c.start + 8 + c.length)), c.start + 8 + c.length);
}

const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'application/octet-stream'];

export function fuzzCase(seed: number, samples: { png: Buffer; jpeg: Buffer }): FuzzCase {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
  const type = pick(IMAGE_TYPES);
  switch (Math.floor(r() * 9)) {
    case 0:
      return { kind: 'random bytes', contentType: type, body: bytes(Math.floor(r() * 4096)), mustRefuse: true };
    case 1:
      return { kind: 'PNG signature + random bytes', contentType: type, body: Buffer.concat([samples.png.subarray(0, 8 + Math.floor(r() * 16)), bytes(Math.floor(r() * 2048))]), mustRefuse: true };
    case 2: {
      // Corrupt bytes inside one chunk; sometimes repair its CRC so that the decoder gets further.
      const png = Buffer.from(samples.png);
      const c = pick(pngChunks(png).filter((x) => x.length > 0));
      const flips = 1 + Math.floor(r() * 4);
      for (let i = 0; i < flips; i++) png[c.start + 8 + Math.floor(r() * c.length)] = Math.floor(r() * 256);
      const repaired = r() < 0.5;
      if (repaired) fixCrc(png, c);
      return { kind: `PNG ${c.type} corrupted${repaired ? ', CRC repaired' : ''}`, contentType: 'image/png', body: png, mustRefuse: false };
    }
    case 3: {
      const src = r() < 0.5 ? samples.png : samples.jpeg;
      const cut = 1 + Math.floor(r() * (src.length * 0.9));
      return { kind: `truncated ${src === samples.png ? 'PNG' : 'JPEG'} at ${cut}/${src.length}`, contentType: type, body: src.subarray(0, cut), mustRefuse: true };
    }
    case 4: {
      // A PNG that declares a huge canvas, its IHDR CRC valid: a decompression bomb.
      const png = Buffer.from(samples.png);
      const ihdr = pngChunks(png)[0]!;
      const big = [50_000, 65_535, 100_000, 2 ** 31 - 1, 1 + Math.floor(r() * 2 ** 31)];
      png.writeUInt32BE(pick(big), 16);
      png.writeUInt32BE(pick(big), 20);
      fixCrc(png, ihdr);
      return { kind: 'PNG declaring a huge size', contentType: 'image/png', body: png, mustRefuse: true };
    }
    case 5: {
      // A JPEG whose SOF declares 65,535 x 65,535.
      const jpeg = Buffer.from(samples.jpeg);
      for (let i = 2; i + 9 < jpeg.length; i++) {
        if (jpeg[i] === 0xff && jpeg[i + 1]! >= 0xc0 && jpeg[i + 1]! <= 0xc2) {
          jpeg.writeUInt16BE(65_535, i + 5);
          jpeg.writeUInt16BE(65_535, i + 7);
          break;
        }
      }
      return { kind: 'JPEG declaring 65535x65535', contentType: 'image/jpeg', body: jpeg, mustRefuse: true };
    }
    case 6: {
      const field = pick(['file', 'image', 'files', '']);
      const data = r() < 0.5 ? bytes(Math.floor(r() * 1024)) : samples.png.subarray(0, Math.floor(r() * samples.png.length));
      const form = multipart([{ name: field, filename: 'x.png', type: 'image/png', data }]);
      // Sometimes break the framing itself.
      const body = r() < 0.3 ? form.body.subarray(0, Math.floor(r() * form.body.length)) : form.body;
      return { kind: `multipart, field '${field}'`, contentType: form.contentType, body, mustRefuse: true };
    }
    case 7: {
      const values = [null, 1, 'x', [], {}, Array(784).fill(-1), Array(785).fill(0), Array(784).fill(Number.MAX_VALUE), { pixels: 'abc' }];
      const body = r() < 0.3 ? bytes(Math.floor(r() * 200)) : Buffer.from(JSON.stringify({ pixels: pick(values), [pick(['model', 'scale', 'x'])]: pick(values) }));
      return { kind: 'JSON', contentType: 'application/json', body, mustRefuse: true };
    }
    default:
      return { kind: 'odd content type', contentType: pick(['text/plain', 'application/xml', 'image/', 'multipart/form-data', undefined]), body: bytes(Math.floor(r() * 512)), mustRefuse: true };
  }
}
