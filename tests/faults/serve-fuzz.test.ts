// The long fuzz of a real `torchlet serve` process: 6,000 fuzzed bodies from 8 clients
// at once (random bytes, corrupted PNG chunks, truncations, huge declared sizes, broken
// multipart and JSON). The process stays up, every answer is a 4xx (or a 200 where a
// mutation left a decodable image), never a 5xx, and its RSS stays bounded.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { fuzzCase } from '../serve/fuzz.js';
import { darkOnLightPng, mnistDigits, mnistPng, serverRss, spawnServer } from '../serve/helpers.js';

const CASES = 6000;
const CLIENTS = 8;
/** Growth allowed from the RSS after the first 1,000 cases to the end, in MiB. */
const GROWTH_MIB = 48;

describe('long fuzz of a server process', () => {
  it(`stays up and answers ${CASES} fuzzed requests with 4xx, never 5xx, in bounded memory`, async () => {
    const [d] = await mnistDigits([0]);
    const samples = { png: mnistPng(d!), jpeg: await sharp(await darkOnLightPng(d!, 96)).jpeg().toBuffer() };
    const { url, child, result } = await spawnServer(['--models', 'super_light', '--rate-limit', '0', '--body-limit', '262144']);
    try {
      const statuses = new Map<number, number>();
      const failures: string[] = [];
      const rss: number[] = [];
      let next = 1;
      const client = async (): Promise<void> => {
        while (next <= CASES) {
          const seed = next++;
          const c = fuzzCase(seed, samples);
          const path = seed % 5 === 0 ? '/predict/batch' : '/predict';
          const r = await fetch(`${url}${path}`, { method: 'POST', headers: c.contentType === undefined ? {} : { 'content-type': c.contentType }, body: c.body });
          const text = await r.text();
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status >= 500 || (c.mustRefuse && r.status < 400)) failures.push(`seed ${seed} (${c.kind}) -> ${path}: ${r.status} ${text.slice(0, 200)}`);
          if (seed % 500 === 0) rss.push(await serverRss(url));
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, client));
      const ok = await fetch(`${url}/predict`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: samples.png });
      const growth = Math.max(...rss.slice(2)) - rss[1]!;
      console.log(
        `serve fuzz: ${CASES} requests; statuses ${[...statuses.entries()].sort().map(([s, n]) => `${s}: ${n}`).join(', ')}; ` +
          `RSS every 500 (MiB): ${rss.map((x) => x.toFixed(0)).join(' ')}; growth after 1,000 ${growth.toFixed(1)} MiB (bound ${GROWTH_MIB})`,
      );
      expect(failures, failures.slice(0, 10).join('\n')).toEqual([]);
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { digit: number }).digit).toBe(7);
      expect(child.exitCode).toBeNull();
      expect(growth).toBeLessThan(GROWTH_MIB);
    } finally {
      child.kill('SIGTERM');
      const r = await result;
      expect(r.code, r.stderr).toBe(0);
    }
  });
});
