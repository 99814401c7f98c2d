// Chromium for the tests that open pages (playwright-core driving Debian's /usr/bin/chromium), or a skip.
import type { TestContext } from 'node:test';
import type { Browser } from 'playwright-core';
import { requireOptional } from './prereq.js';

/** A headless Chromium, or undefined when it is not installed (the test is skipped; a failure under CI=true). */
export async function launchChromium(t: TestContext): Promise<Browser | undefined> {
  if (!requireOptional(t, 'chromium')) return undefined;
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
