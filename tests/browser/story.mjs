// The portal's end-to-end story in headless Chromium, run by tests/api/browser.rs against a
// real `nsw serve`. Every page of the story is checked with axe-core (no serious or critical
// violation) and photographed into $NSW_OUT/screenshots.
//
// Environment: NSW_URL (the server), NSW_PASSWORD (everyone's password), NSW_FIXTURES (the
// repository's fixtures folder), NSW_OUT (where screenshots and downloads go).

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core');

const BASE = process.env.NSW_URL;
const PASSWORD = process.env.NSW_PASSWORD;
const FIXTURES = process.env.NSW_FIXTURES;
const OUT = process.env.NSW_OUT;
const SHOTS = path.join(OUT, 'screenshots');
const DOWNLOADS = path.join(OUT, 'downloads');
fs.mkdirSync(SHOTS, { recursive: true });
fs.mkdirSync(DOWNLOADS, { recursive: true });

const TRADER = '1401234568';
const OTHER_TRADER = '0301234567';
const OFFICER = 'MOIT-OFFICER-1';
const CUSTOMS = 'CUSTOMS-DTP-1';

// The window's date (Viet Nam, UTC+7), and a year from it.
const vnNow = new Date(Date.now() + 7 * 3600 * 1000);
const TODAY = vnNow.toISOString().slice(0, 10);
const NEXT_YEAR = new Date(vnNow.getTime() + 365 * 86400 * 1000).toISOString().slice(0, 10);

let shot = 0;
const seen = [];

/** axe-core on the page as it is: fails on any serious or critical violation. */
async function check(page, name) {
  shot += 1;
  const file = path.join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const title = await page.title();
  seen.push({ name, url: page.url(), title, violations: result.violations.map((v) => `${v.id}(${v.impact})`) });
  console.log(`page ${shot} ${name}: ${page.url()} "${title}" axe: ${result.violations.length} finding(s), ${bad.length} serious/critical`);
  if (bad.length) {
    for (const v of bad) {
      console.log(`  ${v.impact} ${v.id}: ${v.help}`);
      for (const n of v.nodes.slice(0, 5)) console.log(`    ${n.target.join(' ')} — ${n.failureSummary}`);
    }
    throw new Error(`axe: ${bad.length} serious or critical violation(s) on ${name}`);
  }
  // Every page has a title, one h1 and a main landmark; the language is set.
  assert.ok(title.length > 0, `${name}: a title`);
  assert.equal(await page.locator('h1').count(), 1, `${name}: one h1`);
  assert.equal(await page.locator('main').count(), 1, `${name}: one main`);
  assert.ok(['vi', 'en'].includes(await page.getAttribute('html', 'lang')), `${name}: html lang`);
}

async function logIn(page, id) {
  await page.goto(`${BASE}/login`);
  await page.fill('#party_id', id);
  await page.fill('#password', PASSWORD);
  await page.press('#password', 'Enter'); // the keyboard is enough
  await page.waitForLoadState('domcontentloaded');
  assert.ok(!page.url().includes('/login'), `${id} logged in (at ${page.url()})`);
}

async function logOut(page) {
  await page.locator('form[action="/logout"] button').click();
  await page.waitForURL(/\/login/);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  // The trader's browser asks for Vietnamese.
  const context = await browser.newContext({ locale: 'vi-VN', acceptDownloads: true, extraHTTPHeaders: { 'Accept-Language': 'vi-VN,vi;q=0.9' } });
  const page = await context.newPage();

  await page.goto(`${BASE}/login`);
  assert.equal(await page.getAttribute('html', 'lang'), 'vi');
  await check(page, 'login');
  await logIn(page, TRADER);
  await check(page, 'trader-home');

  await logOut(page);
  console.log('story: done');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  fs.writeFileSync(path.join(OUT, 'pages.json'), JSON.stringify(seen, null, 2));
  await browser.close();
}
process.exit(failed ? 1 : 0);
