// The server's safety rules: tokens off loopback, the rate limit, request and queue
// timeouts, the bounded queue, and draining on SIGTERM.
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ModelRegistry, type ServedModel } from '../../src/serve/registry.js';
import { buildServer, startServer } from '../../src/serve/server.js';
import { cli, expectInputError } from '../helpers/cli.js';
import { mnistDigits, mnistPng, releasedServer, spawnServer } from './helpers.js';

const TOKEN = 'correct-horse-battery-staple';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A model that takes `ms` per pass: overload is a fault that a real 0.3 ms model cannot be made to show on demand. */
function slowModel(ms: number): ServedModel {
  return {
    name: 'slow',
    description: 'test double: a slow model',
    params: 0,
    accuracy: null,
    source: 'test',
    classes: 10,
    classify: (_pixels, count) => new Promise((resolve) => setTimeout(() => resolve(new Float32Array(count * 10).fill(0.1)), ms)),
  };
}

async function png(): Promise<Buffer> {
  const [d] = await mnistDigits([0]);
  return mnistPng(d!);
}

/** Sends raw bytes and collects whatever comes back until the socket closes or `ms` pass. */
function rawExchange(socket: Socket, ms: number): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const timer = setTimeout(() => done(), ms);
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data);
    };
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.on('close', done);
    socket.on('error', done);
  });
}

describe('token', () => {
  it('POST needs the bearer token when one is set; GETs do not', async () => {
    const { app, close } = await releasedServer({ token: TOKEN });
    cleanups.push(close);
    const body = await png();
    const post = (auth?: string) =>
      app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'image/png', ...(auth !== undefined && { authorization: auth }) }, payload: body });
    for (const auth of [undefined, 'Bearer wrong-token-wrong-token', `Basic ${TOKEN}`, TOKEN]) {
      const r = await post(auth);
      expect(r.statusCode, String(auth)).toBe(401);
      expect(r.json()).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(/Authorization: Bearer/) });
    }
    expect((await post(`Bearer ${TOKEN}`)).statusCode).toBe(200);
    expect((await app.inject('/healthz')).json()).toMatchObject({ status: 'ok', auth: true });
    expect((await app.inject('/models')).statusCode).toBe(200);
    const doc = (await app.inject('/openapi.json')).json<{ components: { securitySchemes: unknown } }>();
    expect(doc.components.securitySchemes).toEqual({ bearer: { type: 'http', scheme: 'bearer' } });
  });

  it('refuses to listen off loopback without a token, and a token under 16 characters', async () => {
    const registry = new ModelRegistry();
    registry.add(slowModel(1));
    await expect(startServer({ registry, host: '0.0.0.0', port: 0 })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without a token.*TORCHLET_TOKEN/);
    await expect(startServer({ registry, host: '::', port: 0 })).rejects.toThrow(/refusing to listen on ::/);
    await expect(buildServer({ registry, token: 'short' })).rejects.toThrow(/at least 16 characters/);
    const { app, url } = await startServer({ registry, host: '0.0.0.0', port: 0, token: TOKEN });
    cleanups.push(async () => {
      await app.close();
      await registry.close();
    });
    expect(url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
  });

  it('torchlet serve --host 0.0.0.0 without TORCHLET_TOKEN exits 2 saying why', async () => {
    expectInputError(await cli(['serve', '--host', '0.0.0.0', '--port', '0', '--models', 'light'], { TORCHLET_TOKEN: '' }), /refusing to listen on 0\.0\.0\.0 without a token/);
  });
});

describe('limits', () => {
  it('answers 429 with a JSON error past the rate limit', async () => {
    const { app, close } = await releasedServer({ rateLimit: { max: 3, windowMs: 60_000 } });
    cleanups.push(close);
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await app.inject('/healthz')).statusCode);
    expect(codes).toEqual([200, 200, 200, 429]);
    const r = await app.inject('/models');
    expect(r.statusCode).toBe(429);
    expect(r.json()).toMatchObject({ statusCode: 429, error: 'rate_limited', message: expect.stringMatching(/at most 3 requests per 60 s/) });
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('answers 503 queue_full past the bounded queue, and 503 timeout for an image that waited too long', async () => {
    const registry = new ModelRegistry({ maxQueue: 2, maxBatch: 1, queueTimeoutMs: 0 });
    registry.add(slowModel(150));
    const app = await buildServer({ registry, rateLimit: false });
    cleanups.push(async () => {
      await app.close();
      await registry.close();
    });
    const body = await png();
    const replies = await Promise.all(Array.from({ length: 6 }, () => app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'image/png' }, payload: body })));
    const codes = replies.map((r) => r.statusCode).sort();
    expect(codes).toEqual([200, 200, 200, 503, 503, 503]);
    const refused = replies.find((r) => r.statusCode === 503)!;
    expect(refused.json()).toMatchObject({ error: 'queue_full', message: expect.stringMatching(/queue is full \(2 images waiting\)/) });
    expect(refused.headers['retry-after']).toBe('1');

    const timed = new ModelRegistry({ queueTimeoutMs: 60, concurrency: 1 });
    timed.add(slowModel(300));
    const app2 = await buildServer({ registry: timed, rateLimit: false });
    cleanups.push(async () => {
      await app2.close();
      await timed.close();
    });
    const [first, second] = await Promise.all([0, 1].map(() => app2.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'image/png' }, payload: body })));
    expect(first!.statusCode).toBe(200);
    expect(second!.statusCode).toBe(503);
    expect(second!.json()).toMatchObject({ error: 'timeout', message: expect.stringMatching(/waited 60 ms/) });
  });

  it('closes a request that is not received within the request timeout with 408', async () => {
    const registry = new ModelRegistry();
    registry.add(slowModel(1));
    const { app } = await startServer({ registry, port: 0, requestTimeoutMs: 400, rateLimit: false });
    cleanups.push(async () => {
      await app.close();
      await registry.close();
    });
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    socket.write('POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n\x89PNG');
    const t0 = performance.now();
    const answer = await rawExchange(socket, 5000);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});

describe('SIGTERM', () => {
  it('drains: the request in flight is answered, new connections are refused, and the process exits 0', async () => {
    const { url, child, result } = await spawnServer(['--models', 'super_light']);
    const { port } = new URL(url);
    const body = await png();
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    // Half a request is in flight when SIGTERM arrives.
    socket.write(`POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    socket.write(body.subarray(0, 40));
    const answer = rawExchange(socket, 10_000);
    await new Promise((r) => setTimeout(r, 150));
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const refused = await fetch(`${url}/healthz`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(refused);
    socket.write(body.subarray(40));
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).toMatch(/"digit":7/);
    const r = await result;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/SIGTERM: draining/);
    expect(r.stderr).toMatch(/drained/);
  });
});
