// A minimal PNG writer for 8-bit grayscale: the 28x28 "what the model saw" image and
// extracted MNIST digits. node:zlib does the work, so it costs tens of microseconds where
// a general image pipeline costs a millisecond.
import { crc32, deflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One PNG chunk: length, type, data and the CRC over type and data. */
export function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export interface EncodePngOptions {
  /**
   * Deflate the pixels (default true). false stores them: for the server's 28x28 image
   * node:zlib's setup (a stream object per call) cost ~15 us, a tenth of the event loop's
   * work per request, to save ~650 bytes. At most 65,535 bytes of image data can be stored.
   */
  compress?: boolean;
}

/** Encodes row-major 8-bit gray pixels as a PNG. */
export function encodePng(gray: Uint8Array, width: number, height: number, options: EncodePngOptions = {}): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`a PNG needs a positive integer size, got ${width}x${height}`);
  }
  if (gray.length !== width * height) throw new RangeError(`${width}x${height} gray pixels need ${width * height} bytes, got ${gray.length}`);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // grayscale
  // Every scanline starts with its filter type: 0, none. Small images gain nothing from filtering.
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(gray.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  if (options.compress === false && raw.length > 65535) throw new RangeError(`a stored PNG holds at most 65,535 bytes of image data, ${width}x${height} needs ${raw.length}`);
  const data = options.compress === false ? zlibStored(raw) : deflateSync(raw);
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', data), chunk('IEND', Buffer.alloc(0))]);
}

/** A zlib stream (RFC 1950) of one stored deflate block (RFC 1951, 3.2.4): at most 65,535 bytes. */
function zlibStored(raw: Buffer): Buffer {
  const out = Buffer.alloc(2 + 5 + raw.length + 4);
  out[0] = 0x78; // deflate, 32 KiB window
  out[1] = 0x01; // no dictionary, fastest; (0x78 << 8 | 0x01) % 31 === 0 as the header check requires
  out[2] = 0x01; // the final block, stored
  out.writeUInt16LE(raw.length, 3);
  out.writeUInt16LE(~raw.length & 0xffff, 5);
  raw.copy(out, 7);
  out.writeUInt32BE(adler32(raw), 7 + raw.length);
  return out;
}

function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  // For at most 65,535 bytes the sums stay below 2^53: no reduction inside the loop.
  for (let i = 0; i < data.length; i++) {
    a += data[i] ?? 0;
    b += a;
  }
  return (((b % 65521) << 16) | (a % 65521)) >>> 0;
}
