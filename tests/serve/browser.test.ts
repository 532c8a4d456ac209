// The page in a real browser (Debian's chromium through playwright-core): digits drawn with
// pointer strokes, files chosen, the model switched, the keyboard, and a screenshot of each
// viewport (written to artifacts/browser/).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumMissing, launchChromium } from '../helpers/browser.js';
import { ROOT } from '../helpers/cli.js';
import { draw as drawStrokes, STROKES, type Stroke } from './draw.js';
import { darkOnLightPng, listeningServer, mnistDigits, mnistPng } from './helpers.js';

export const ARTIFACTS = join(ROOT, 'artifacts', 'browser');
/** Draws, waiting for each stroke's /predict answer. */
const draw = (page: Page, strokes: Stroke[]): Promise<void> => drawStrokes(page, strokes, () => page.waitForResponse((r) => r.url().includes('/predict')));

async function digitShown(page: Page): Promise<string> {
  return (await page.locator('#digit').textContent())?.trim() ?? '';
}

const canRun = !chromiumMissing();

describe.skipIf(!canRun)('the page in chromium', () => {
  let browser: Browser;
  let url: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ url, close } = await listeningServer());
    browser = await launchChromium();
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await close?.();
  });

  it('reads a 1, a 7 and a 0 drawn with pointer strokes on a desktop viewport', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await expect.poll(() => page.locator('#model option').count()).toBe(2);
    for (const digit of [1, 7, 0]) {
      await page.getByRole('button', { name: 'Clear' }).click();
      await draw(page, STROKES[digit]!);
      // The answer arrives before the page has drawn it: wait for the digit, as for #details below.
      await expect.poll(() => digitShown(page), { message: `drew a ${digit}` }).toBe(String(digit));
      expect(await page.locator('#seen').isVisible()).toBe(true);
      expect(await page.locator('#bars li.top').getAttribute('aria-label')).toMatch(new RegExp(`^${digit}: [<>]?\\d`));
    }
    await page.screenshot({ path: join(ARTIFACTS, 'desktop.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('reads an extracted MNIST PNG and a dark-on-light photo chosen as files, and switches models', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    await page.goto(url);
    await expect.poll(() => page.locator('#model option').count()).toBe(2);
    const [mnist, other] = await mnistDigits([0, 1]); // a 7 and a 2
    const choose = async (name: string, buffer: Buffer): Promise<void> => {
      const answered = page.waitForResponse((r) => r.url().includes('/predict'));
      await page.locator('#file').setInputFiles({ name, mimeType: 'image/png', buffer });
      expect((await answered).status()).toBe(200);
    };
    await choose('mnist-7.png', mnistPng(mnist!));
    await expect.poll(() => digitShown(page)).toBe(String(mnist!.label));
    await choose('photo-2.png', await darkOnLightPng(other!));
    await expect.poll(() => digitShown(page)).toBe(String(other!.label));
    expect(await page.locator('#details').textContent()).toMatch(/280×280 png · inverted \(light background\) · super_light/);
    // Choosing another model asks again with the same image.
    const again = page.waitForResponse((r) => r.url().includes('/predict?model=light'));
    await page.getByLabel('Model').selectOption('light');
    await again;
    await expect.poll(() => page.locator('#details').textContent()).toMatch(/ · light, /);
    // A file that is not an image gets the server's message, not a crash.
    await page.locator('#file').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image') });
    await expect.poll(() => page.locator('#status').textContent()).toMatch(/Could not read notes\.txt: .*not a PNG, JPEG, WebP or GIF/);
    await page.close();
  });

  it('is usable from the keyboard, with labelled controls', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    await page.goto(url);
    await expect.poll(() => page.locator('#model option').count()).toBe(2);
    for (const name of ['Clear', 'Predict']) expect(await page.getByRole('button', { name }).isVisible()).toBe(true);
    expect(await page.getByLabel('Model').count()).toBe(1);
    expect(await page.getByLabel('Choose an image…').count()).toBe(1);
    const focused: string[] = [];
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press('Tab');
      focused.push(await page.evaluate<string>('document.activeElement?.id || document.activeElement?.tagName || ""'));
    }
    expect(focused).toEqual(['clear', 'predict', 'file', 'model', expect.any(String)]);
    // Draw, then clear and predict from the keyboard.
    await draw(page, STROKES[1]!);
    await page.locator('#clear').focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => digitShown(page)).toBe('–');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#status').textContent()).toMatch(/Draw a digit first/);
    await page.close();
  });

  it('fits a phone-sized viewport, and draws there too', async () => {
    const page = await browser.newPage({ viewport: { width: 360, height: 780 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await page.goto(url);
    await expect.poll(() => page.locator('#model option').count()).toBe(2);
    // (Browser-side code as strings: this project's TypeScript has no DOM types.)
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    // The model menu shows its whole text inside its box.
    const select = await page.evaluate<{ text: number; inner: number; right: number; page: number }>(`(() => {
      const el = document.getElementById('model');
      const probe = document.createElement('span');
      probe.style.font = getComputedStyle(el).font;
      probe.textContent = el.options[el.selectedIndex].text;
      document.body.append(probe);
      const text = probe.getBoundingClientRect().width;
      probe.remove();
      const r = el.getBoundingClientRect();
      return { text, inner: r.width - 40, right: r.right, page: document.documentElement.clientWidth };
    })()`);
    expect(select.text).toBeLessThanOrEqual(select.inner);
    expect(select.right).toBeLessThanOrEqual(select.page);
    await draw(page, STROKES[7]!);
    await expect.poll(() => digitShown(page)).toBe('7');
    await page.screenshot({ path: join(ARTIFACTS, 'phone.png'), fullPage: true });
    await page.close();
  });
});
