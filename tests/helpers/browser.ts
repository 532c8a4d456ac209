// Debian's Chromium through playwright-core (npm cannot download browsers here), for every
// page test: the same binary, the same flags, and the same skip-or-fail rule.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { missing } from './requires.js';

export const CHROMIUM = '/usr/bin/chromium';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'];

/** True (skip) when Chromium is not installed outside CI; throws under CI. */
export function chromiumMissing(): boolean {
  return missing(existsSync(CHROMIUM), `Chromium (Debian package 'chromium', at ${CHROMIUM})`);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}
