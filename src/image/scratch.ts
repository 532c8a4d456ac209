// Buffers reused from call to call by synchronous code whose results never alias them: what
// would otherwise be garbage on every call (hundreds of KB per 280x280 upload) is allocated
// once. The garbage mattered beyond its own cost: a server allocating ~150 KB of ArrayBuffers
// per request could settle into full mark-compacts every ~80 requests, driven by external
// memory, with a p99 seven times the usual (README, "Serving speed").

/** A reusable byte buffer; see the file comment. */
export class Scratch {
  private buffer = new Uint8Array(0);

  /** Above `keepAtMost` bytes each call gets a new buffer, so that one huge image does not pin its size for good. */
  constructor(private readonly keepAtMost = Number.POSITIVE_INFINITY) {}

  /** `size` bytes at offset 0 of the buffer, whose contents are whatever was left there. */
  take(size: number): Uint8Array {
    if (size > this.keepAtMost) return new Uint8Array(size);
    if (this.buffer.length < size) this.buffer = new Uint8Array(size);
    return this.buffer.subarray(0, size);
  }

  /** `length` float32s over the same buffer. */
  takeFloats(length: number): Float32Array {
    const bytes = this.take(length * 4);
    return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  }
}
