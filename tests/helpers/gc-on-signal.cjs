// Preloaded into a server under soak (with --expose-gc): SIGUSR2 runs a full collection, so
// an RSS sample taken after it shows what is still held, not the garbage V8 has yet to sweep.
process.on('SIGUSR2', () => globalThis.gc());
