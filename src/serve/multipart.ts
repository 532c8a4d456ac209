// Multipart uploads (POST /predict and /predict/batch). Fastify buffers the body, which
// bodyLimit bounds, and busboy parses the buffer in one pass. @fastify/multipart did the
// same parse through a pipe and an async iterator per request: that cost a 28x28 upload
// 46 us more at concurrency 1 (p50 287 against a raw image/png body's 241 us), and it kept
// each request's objects alive across two scavenges, so V8 promoted ~1.2 MB per scavenge
// and each took 2-4 ms (measured with --trace-gc under wrk; README, Serving speed).
import { Busboy } from '@fastify/busboy';
import { ApiError } from './errors.js';

export interface Upload {
  /** The form field: 'file' or 'files'. */
  field: string;
  filename: string;
  bytes: Buffer;
}

/** Form fields that may hold the image. */
const FILE_FIELDS = new Set(['file', 'files']);

export function isMultipart(contentType: string | undefined): boolean {
  return contentType !== undefined && /^multipart\/form-data\b/i.test(contentType);
}

/**
 * The files of a buffered multipart/form-data body, in order; other parts are skipped.
 * Rejects with a 4xx ApiError: a file in another field, more than `maxFiles` files, no
 * file, or a body that is not well-formed multipart.
 */
export function readUploads(body: Buffer, contentType: string, maxFiles: number): Promise<Upload[]> {
  return new Promise((resolve, reject) => {
    let parser: ReturnType<typeof Busboy>;
    try {
      parser = Busboy({ headers: { 'content-type': contentType }, limits: { files: maxFiles, fields: 32, parts: maxFiles + 32, headerPairs: 100, fieldSize: 64 * 1024 } });
    } catch (err) {
      reject(malformed(err));
      return;
    }
    const uploads: Upload[] = [];
    let failed = false;
    const fail = (err: ApiError): void => {
      failed = true;
      reject(err);
    };
    parser.on('file', (field, stream, filename) => {
      // A part cut short errors on its own stream: without a listener that would be an
      // uncaught exception.
      stream.on('error', (err: unknown) => {
        if (!failed) fail(malformed(err));
      });
      if (failed || !FILE_FIELDS.has(field)) {
        stream.resume();
        if (!failed) fail(new ApiError(400, 'wrong_field', `the image must be in a multipart field named 'file', got a file in '${field}'`));
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      // Always a copy, never a view of the body: a view kept the whole body alive while the
      // image waited for its batch, and at concurrency 16 with the 280x280 upload that
      // turned into a mark-compact every ~90 ms (--trace-gc: 56 in 5 s against 0 with the copy).
      stream.on('end', () => uploads.push({ field, filename, bytes: Buffer.concat(chunks) }));
    });
    parser.on('filesLimit', () => {
      if (!failed) fail(new ApiError(413, 'too_many_files', maxFiles === 1 ? 'send one file to /predict; use /predict/batch for several' : `at most ${maxFiles} files per request`));
    });
    const tooManyParts = (): void => {
      if (!failed) fail(new ApiError(413, 'too_many_parts', `the form has too many parts: at most ${maxFiles} files and 32 other fields`));
    };
    parser.on('partsLimit', tooManyParts);
    parser.on('fieldsLimit', tooManyParts);
    parser.on('error', (err: unknown) => {
      if (!failed) fail(malformed(err));
    });
    parser.on('finish', () => {
      if (failed) return;
      if (uploads.length === 0) fail(new ApiError(400, 'missing_file', "the multipart body has no file; send the image in a field named 'file'"));
      else resolve(uploads);
    });
    parser.end(body);
  });
}

function malformed(err: unknown): ApiError {
  return new ApiError(400, 'malformed_multipart', `the multipart body could not be parsed: ${err instanceof Error ? err.message : String(err)}`);
}
