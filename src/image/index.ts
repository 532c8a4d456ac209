// Images in, MNIST-like 28x28 digits out.
export { ImageError } from './errors.js';
export type { ImageErrorCode } from './errors.js';
export { preprocessPixels, FRAME, BOX, NOISE_LEVEL, MIN_CONTRAST } from './mnistify.js';
export type { BBox, Channels, ImageFormat, PreprocessResult } from './mnistify.js';
export { preprocessImage, sniffFormat, DEFAULT_MAX_PIXELS } from './decode.js';
export type { PreprocessOptions } from './decode.js';
export { encodePng } from './png.js';
