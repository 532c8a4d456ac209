// The IDX format (LeCun's MNIST container): two zero bytes, a dtype byte, a dimension
// count, that many big-endian uint32 sizes, then the row-major data. Only uint8 is
// supported because that is all MNIST-style datasets use.
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip as gunzipCallback } from 'node:zlib';
import { DataError } from './errors.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const UINT8 = 0x08;
const MAX_DIMS = 4;
const OTHER_DTYPES: Record<number, string> = {
  0x09: 'int8',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

const gunzipAsync = promisify(gunzipCallback);

const hex = (n: number, width: number): string => `0x${n.toString(16).padStart(width, '0')}`;

/** Parses IDX bytes; `name` is only used in error messages. The data is a view, not a copy. */
export function parseIdx(bytes: Uint8Array, name: string): IdxArray {
  if (bytes.length < 4) {
    throw new DataError('TRUNCATED', name, `only ${bytes.length} bytes, too short for an IDX header (is the file incomplete?)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError('BAD_MAGIC', name, `not an IDX file: magic ${hex(magic, 8)} should start with two zero bytes`);
  }
  const dtype = bytes[2] ?? 0;
  if (dtype !== UINT8) {
    const known = OTHER_DTYPES[dtype];
    throw new DataError(
      'BAD_DTYPE',
      name,
      `unsupported IDX element type ${hex(dtype, 2)}${known ? ` (${known})` : ''}; only uint8 (0x08) is supported`,
    );
  }
  const rank = bytes[3] ?? 0;
  if (rank < 1 || rank > MAX_DIMS) {
    throw new DataError('BAD_DIMS', name, `IDX header declares ${rank} dimensions; expected 1 to ${MAX_DIMS}`);
  }
  const headerLength = 4 + 4 * rank;
  if (bytes.length < headerLength) {
    throw new DataError(
      'TRUNCATED',
      name,
      `IDX header truncated: ${rank} dimensions need ${headerLength} header bytes but the file has ${bytes.length}`,
    );
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  // A float product can lose precision for absurd dims, but it then cannot equal a real length either.
  const expected = dims.reduce((a, b) => a * b, 1);
  const actual = bytes.length - headerLength;
  const shape = `[${dims.join(', ')}]`;
  if (actual < expected) {
    throw new DataError(
      'SIZE_MISMATCH',
      name,
      `truncated: dims ${shape} need ${expected} data bytes but only ${actual} are present (is the file incomplete?)`,
    );
  }
  if (actual > expected) {
    throw new DataError(
      'SIZE_MISMATCH',
      name,
      `${actual - expected} unexpected trailing bytes after the ${expected} data bytes for dims ${shape}`,
    );
  }
  return { dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerLength, expected) };
}

/** Encodes a uint8 IDX file (uncompressed). */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  if (dims.length < 1 || dims.length > MAX_DIMS) throw new RangeError(`IDX needs 1 to ${MAX_DIMS} dims, got ${dims.length}`);
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) throw new RangeError(`IDX dims must be uint32, got ${d}`);
  }
  const expected = dims.reduce((a, b) => a * b, 1);
  if (expected !== data.length) throw new RangeError(`dims [${dims.join(', ')}] need ${expected} bytes, got ${data.length}`);
  const headerLength = 4 + 4 * dims.length;
  const out = new Uint8Array(headerLength + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, (UINT8 << 8) | dims.length);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, headerLength);
  return out;
}

/** Gunzips, turning zlib's terse codes into errors that say what probably went wrong. */
export async function gunzip(bytes: Uint8Array, name: string): Promise<Uint8Array> {
  try {
    const out = await gunzipAsync(bytes);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'Z_BUF_ERROR') {
      throw new DataError('TRUNCATED_GZIP', name, 'truncated gzip stream (is the download incomplete?)', { cause: err });
    }
    const detail = err instanceof Error ? err.message : String(err);
    throw new DataError('CORRUPT_GZIP', name, `corrupt gzip data (${detail}); delete the file and fetch it again`, { cause: err });
  }
}

/** Reads a file's IDX bytes, gunzipping `.gz` files. */
export async function readIdxBytes(path: string): Promise<Uint8Array> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError('NOT_FOUND', path, 'file not found', { cause: err });
    if (code === 'EISDIR') throw new DataError('IS_DIRECTORY', path, 'is a directory, expected an IDX file', { cause: err });
    const detail = err instanceof Error ? err.message : String(err);
    throw new DataError('READ_FAILED', path, `cannot read file (${detail})`, { cause: err });
  }
  if (raw.length === 0) throw new DataError('EMPTY_FILE', path, 'file is empty (is the download incomplete?)');
  const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  return path.endsWith('.gz') ? gunzip(bytes, path) : bytes;
}

export async function readIdxFile(path: string): Promise<IdxArray> {
  return parseIdx(await readIdxBytes(path), path);
}
