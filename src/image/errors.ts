// Errors for images that cannot be used. Pure (no Node imports): the browser build shares it.

/**
 * Why an image was refused, for callers that map it to a status code:
 * - `empty`: no bytes, or no pixels;
 * - `unsupported_format`: not a PNG, JPEG, WebP or GIF (judged from the bytes, not the name);
 * - `corrupt`: the right kind of file, but truncated or damaged;
 * - `too_large`: the header declares more pixels than allowed (checked before decoding);
 * - `blank`: decoded, but there is no digit to find (one flat colour, or too little contrast).
 */
export type ImageErrorCode = 'unsupported_format' | 'corrupt' | 'too_large' | 'blank' | 'empty';

export class ImageError extends Error {
  readonly code: ImageErrorCode;

  constructor(code: ImageErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ImageError';
    this.code = code;
  }
}
