// Opens an item page in headless Chromium at a phone's size, waits until the page
// has checked every step itself, and prints what it shows as one JSON line:
//   node check.js URL [SCREENSHOT.png]
// Needs playwright-core (NODE_PATH) and Debian's chromium (or $CHROMIUM).
'use strict';
const { chromium } = require('playwright-core');

(async () => {
  const [url, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForSelector('body[data-done="true"]', { timeout: 60000 });
    const steps = await page.$$eval('li.step', (lis) => lis.map((li) => ({
      event_id: li.dataset.eventId,
      state: li.dataset.state,
      reason: li.dataset.reason || '',
      mark: li.querySelector('.mark').textContent,
    })));
    const summary = (await page.textContent('#summary')).trim();
    const overflows = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ steps, summary, overflows, errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
