import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/serve/errors.js';
import { isMultipart, readUploads } from '../../src/serve/multipart.js';
import { multipart } from './helpers.js';

/** The ApiError a rejected readUploads gave. */
async function failure(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(err)}`);
  return err;
}

describe('readUploads', () => {
  it('gives the files in order, byte for byte, and skips other fields', async () => {
    const a = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255]);
    const b = Buffer.alloc(70_000, 7);
    const form = multipart([
      { name: 'note', data: 'hello' },
      { name: 'file', filename: 'a.png', type: 'image/png', data: a },
      { name: 'files', filename: 'b.png', type: 'image/png', data: b },
    ]);
    const uploads = await readUploads(form.body, form.contentType, 5);
    expect(uploads.map((u) => [u.field, u.filename])).toEqual([
      ['file', 'a.png'],
      ['files', 'b.png'],
    ]);
    expect(uploads[0]?.bytes.equals(a)).toBe(true);
    expect(uploads[1]?.bytes.equals(b)).toBe(true);
  });

  it('names the problem: the wrong field, too many files, no file, too many parts', async () => {
    const png = Buffer.from('png');
    const wrong = multipart([{ name: 'image', filename: 'a.png', type: 'image/png', data: png }]);
    expect(await failure(readUploads(wrong.body, wrong.contentType, 1))).toMatchObject({ statusCode: 400, code: 'wrong_field' });
    const three = multipart([0, 1, 2].map((i) => ({ name: 'file', filename: `${i}.png`, type: 'image/png', data: png })));
    expect(await failure(readUploads(three.body, three.contentType, 1))).toMatchObject({ statusCode: 413, code: 'too_many_files', message: expect.stringMatching(/one file/) });
    expect(await failure(readUploads(three.body, three.contentType, 2))).toMatchObject({ statusCode: 413, code: 'too_many_files', message: expect.stringMatching(/at most 2 files/) });
    const none = multipart([{ name: 'note', data: 'no file' }]);
    expect(await failure(readUploads(none.body, none.contentType, 1))).toMatchObject({ statusCode: 400, code: 'missing_file' });
    const chatty = multipart(Array.from({ length: 40 }, (_, i) => ({ name: `f${i}`, data: 'x' })));
    expect(await failure(readUploads(chatty.body, chatty.contentType, 1))).toMatchObject({ statusCode: 413, code: 'too_many_parts' });
  });

  it('rejects malformed bodies with a 400 and no uncaught error: no boundary, a part cut short, garbage', async () => {
    expect(await failure(readUploads(Buffer.from('x'), 'multipart/form-data', 1))).toMatchObject({ statusCode: 400, code: 'malformed_multipart', message: expect.stringMatching(/boundary/i) });
    const form = multipart([{ name: 'file', filename: 'a.png', type: 'image/png', data: Buffer.alloc(5000, 1) }]);
    // Cut inside the file's bytes: busboy errors on the part's own stream.
    const cut = form.body.subarray(0, 2000);
    expect(await failure(readUploads(cut, form.contentType, 1))).toMatchObject({ statusCode: 400, code: 'malformed_multipart' });
    expect(await failure(readUploads(Buffer.from('\x00\xff garbage with no boundary at all'), form.contentType, 1))).toMatchObject({ statusCode: 400 });
  });
});

describe('isMultipart', () => {
  it('takes multipart/form-data with its parameters, in any case, and nothing else', () => {
    expect(isMultipart('multipart/form-data; boundary=x')).toBe(true);
    expect(isMultipart('Multipart/Form-Data; boundary=x')).toBe(true);
    expect(isMultipart('multipart/mixed; boundary=x')).toBe(false);
    expect(isMultipart('image/png')).toBe(false);
    expect(isMultipart(undefined)).toBe(false);
  });
});
