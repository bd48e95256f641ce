// The portal's end-to-end story in headless Chromium, run by tests/api/browser.rs against a
// real `nsw serve`. Every page of the story is checked with axe-core (no serious or critical
// violation) and photographed into $NSW_OUT/screenshots.
//
// Environment: NSW_URL (the server), NSW_PAYGATE_URL (the payment platform it collects fees
// through), NSW_PASSWORD (everyone's password), NSW_FIXTURES (the repository's fixtures
// folder), NSW_OUT (where screenshots and downloads go).

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core');

const BASE = process.env.NSW_URL;
const PAYGATE = process.env.NSW_PAYGATE_URL;
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
const PPD_OFFICER = 'PPD-OFFICER-1';
const CUSTOMS = 'CUSTOMS-DTP-1';
const ADMIN = 'OPERATOR-1';

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
  // The trader's browser asks for Vietnamese. bypassCSP lets axe-core's script into pages whose
  // policy allows no script at all (the policy itself is checked over HTTP in tests/api).
  const viContext = () => browser.newContext({ locale: 'vi-VN', acceptDownloads: true, bypassCSP: true, extraHTTPHeaders: { 'Accept-Language': 'vi-VN,vi;q=0.9' } });
  const traderCtx = await viContext();
  const page = await traderCtx.newPage();

  await page.goto(`${BASE}/login`);
  assert.equal(await page.getAttribute('html', 'lang'), 'vi');
  await check(page, 'login');
  await logIn(page, TRADER);
  await check(page, 'trader-home');

  // 1. A declaration with errors: every error beside the numbered line it points to.
  await page.goto(`${BASE}/declarations/new`);
  await check(page, 'declaration-upload');
  await page.setInputFiles('input[name="document"]', path.join(FIXTURES, 'invalid/declaration/hs-unknown-6-digit.xml'));
  await page.locator('form[action="/declarations/new"] button[type="submit"]').click();
  await page.waitForLoadState('domcontentloaded');
  const refused = await page.content();
  assert.ok(refused.includes('HS_UNKNOWN'), 'the refusal names HS_UNKNOWN');
  const badRow = page.locator('tr.bad').first();
  assert.ok(await badRow.count() > 0, 'the line in error is marked');
  assert.match(await badRow.innerText(), /97/, 'the error points at line 97');
  await check(page, 'declaration-refused');

  // 2. Apply for a licence with the form: no XML. A wrong HS code is shown on its field.
  await page.goto(`${BASE}/applications/new`);
  await check(page, 'application-form');
  const set = async (name, value) => {
    const el = page.locator(`[name="${name}"]`);
    const tag = await el.evaluate((e) => e.tagName.toLowerCase());
    if (tag === 'select') await el.selectOption(value); else await el.fill(value);
  };
  await set('application_type', 'EXL');
  await set('direction', 'EX');
  await set('agency', 'MOIT');
  await set('cp_id', 'PH-NFA-2026-0091');
  await set('cp_name', 'Luzon Rice Importers Corporation');
  await set('cp_street', '1850 Roxas Boulevard, Malate');
  await set('cp_city', 'Manila');
  await set('cp_post_code', '1004');
  await set('cp_country', 'PH');
  await set('export_country', 'VN');
  await set('import_country', 'PH');
  await set('valid_from', TODAY);
  await set('valid_to', NEXT_YEAR);
  await set('line_0_hs_code', '990199');
  await set('line_0_description', 'Gạo trắng hạt dài 5% tấm, bao 50 kg');
  await set('line_0_quantity', '12000');
  await set('line_0_unit', 'TNE');
  await set('line_0_value', '6180000.00');
  await set('line_0_currency', 'USD');
  // A second line, added without script.
  await page.locator('button[name="action"][value="add_line"]').click();
  await page.waitForLoadState('domcontentloaded');
  assert.equal(await page.inputValue('[name="line_0_hs_code"]'), '990199', 'what was typed is kept');
  await set('line_1_hs_code', '10063030');
  await set('line_1_description', 'Gạo nếp, bao 25 kg');
  await set('line_1_quantity', '3000');
  await set('line_1_unit', 'TNE');
  await set('line_1_value', '1830000.00');
  await set('line_1_currency', 'USD');
  // Enter in a field submits the application (not "add a line").
  await page.press('[name="line_1_value"]', 'Enter');
  await page.waitForLoadState('domcontentloaded');
  const hsError = page.locator('#line_0_hs_code-error');
  assert.ok(await hsError.count() === 1, 'the HS code error is beside its field');
  assert.equal(await page.getAttribute('#line_0_hs_code', 'aria-invalid'), 'true');
  await check(page, 'application-form-refused');
  await set('line_0_hs_code', '10063099');
  await page.locator('button[name="action"][value="submit"]:not([aria-hidden])').click();
  await page.waitForURL(/\/applications\/[0-9a-f-]{36}$/);
  const applicationUrl = page.url();
  const applicationId = applicationUrl.split('/').pop();
  await check(page, 'application');
  await logOut(page);

  // 3. The MOIT officer finds it in the inbox and asks for a supplement (a reason is required).
  const officerCtx = await viContext();
  const officer = await officerCtx.newPage();
  await logIn(officer, OFFICER);
  await officer.goto(`${BASE}/inbox`);
  await check(officer, 'officer-inbox');
  await officer.locator(`a[href="/inbox/${applicationId}"]`).first().click();
  await officer.waitForURL(new RegExp(`/inbox/${applicationId}`));
  await check(officer, 'officer-application');
  const supplementForm = officer.locator('form:has(input[name="action"][value="request_supplement"])');
  await supplementForm.locator('button[type="submit"]').click();
  await officer.waitForLoadState('domcontentloaded');
  assert.ok(await officer.locator('[name="reason"][aria-invalid="true"]').count() >= 1, 'the missing reason is shown on its field');
  await check(officer, 'officer-supplement-refused');
  await officer.locator('form:has(input[name="action"][value="request_supplement"]) textarea[name="reason"]')
    .fill('Bổ sung hợp đồng mua bán gạo với bên nhập khẩu.');
  await officer.locator('form:has(input[name="action"][value="request_supplement"]) button[type="submit"]').click();
  await officer.waitForLoadState('domcontentloaded');
  await check(officer, 'officer-supplement-requested');

  // 4. The trader answers the supplement request.
  await logIn(page, TRADER);
  await page.goto(applicationUrl);
  assert.ok((await page.content()).includes('Bổ sung hợp đồng mua bán gạo'), 'the officer\'s reason is shown');
  await page.fill('textarea[name="note"]', 'Đã bổ sung hợp đồng số DTM-LRIC-2026-007 ngày 12/01/2026.');
  await page.locator(`form[action="/applications/${applicationId}/supplement"] button[type="submit"]`).click();
  await page.waitForLoadState('domcontentloaded');
  await check(page, 'application-supplemented');

  // 5. The officer reviews and issues the licence for a year.
  await officer.goto(`${BASE}/inbox/${applicationId}`);
  await officer.locator('form:has(input[name="action"][value="review"]) button[type="submit"]').click();
  await officer.waitForLoadState('domcontentloaded');
  const issueForm = officer.locator('form:has(input[name="action"][value="issue"])');
  await issueForm.locator('textarea[name="conditions"]').fill('Chỉ xuất khẩu sang Philippines.');
  await issueForm.locator('input[name="valid_from"]').fill(TODAY);
  await issueForm.locator('input[name="valid_until"]').fill(NEXT_YEAR);
  await issueForm.locator('button[type="submit"]').click();
  await officer.waitForLoadState('domcontentloaded');
  const issuedText = await officer.locator('main').innerText();
  const number = (issuedText.match(/MOIT-\d{4}-\d{6}/) || [])[0];
  assert.ok(number, `a licence number is shown after issuing: ${issuedText.slice(0, 400)}`);
  await check(officer, 'officer-issued');
  await officer.goto(`${BASE}/agency/licences`);
  await check(officer, 'officer-licences');

  // 6. The trader downloads the signed licence and declares against it.
  await page.goto(`${BASE}/licences`);
  await check(page, 'trader-licences');
  await page.goto(`${BASE}/licences/${encodeURIComponent(number)}`);
  await check(page, 'trader-licence');
  for (const [link, file] of [['document', 'licence.xml'], ['signature', 'licence.p7s']]) {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(`a[href$="/${link}"]`).first().click(),
    ]);
    await download.saveAs(path.join(DOWNLOADS, file));
  }
  const rice = fs.readFileSync(path.join(FIXTURES, 'valid/declaration/02-export-rice-to-ph-moit-licence.xml'), 'utf8')
    .replaceAll('045/GCN-XKG', number);
  const riceFile = path.join(DOWNLOADS, 'rice-export.xml');
  fs.writeFileSync(riceFile, rice);
  await page.goto(`${BASE}/declarations/new`);
  await page.setInputFiles('input[name="document"]', riceFile);
  await page.locator('form[action="/declarations/new"] button[type="submit"]').click();
  await page.waitForURL(/\/declarations\/[0-9a-f-]{36}$/);
  const declarationUrl = page.url();
  const declarationId = declarationUrl.split('/').pop();
  assert.ok((await page.content()).includes('Đã tiếp nhận'), 'the declaration is accepted');
  await check(page, 'declaration');
  await page.goto(`${BASE}/declarations`);
  await check(page, 'trader-declarations');

  // Another trader's session never shows this trader's dossiers.
  const otherCtx = await viContext();
  const other = await otherCtx.newPage();
  await logIn(other, OTHER_TRADER);
  for (const url of [declarationUrl, applicationUrl, `${BASE}/licences/${encodeURIComponent(number)}`]) {
    const r = await other.goto(url);
    assert.equal(r.status(), 404, `another trader gets 404 for ${url}`);
  }
  await other.goto(`${BASE}/declarations`);
  assert.ok(!(await other.content()).includes(declarationId), 'not in the other trader\'s list');
  await check(other, 'other-trader-declarations');

  // 7. Customs sees the licences it drew on, and clears it.
  const customsCtx = await viContext();
  const customs = await customsCtx.newPage();
  await logIn(customs, CUSTOMS);
  await customs.goto(`${BASE}/customs/declarations`);
  await check(customs, 'customs-declarations');
  await customs.goto(`${BASE}/customs/declarations/${declarationId}`);
  assert.ok((await customs.content()).includes(number), 'the licence drawn is shown');
  await check(customs, 'customs-declaration');
  await customs.locator('form:has(input[name="action"][value="clear"]) button[type="submit"]').click();
  await customs.waitForLoadState('domcontentloaded');
  await check(customs, 'customs-cleared');
  await customs.goto(`${BASE}/customs/partner-documents`);
  await check(customs, 'customs-partner-documents');

  // 8. The trader sees the declaration cleared and the licence's balance drawn: 12000 t
  //    allowed on line 1, 2000 t drawn, 10000 t left (Vietnamese numbers: 10.000).
  await page.goto(declarationUrl);
  assert.ok((await page.content()).includes('Đã thông quan'), 'the declaration is cleared');
  await check(page, 'declaration-cleared');
  await page.goto(`${BASE}/licences/${encodeURIComponent(number)}`);
  const balances = await page.locator('main').innerText();
  assert.ok(balances.includes('10.000'), `the balance shows 10.000 t left: ${balances.slice(0, 600)}`);
  await check(page, 'licence-drawn');

  // The same page in English, through the switch; numbers as English writes them.
  await page.locator('nav.lang a').click();
  await page.waitForLoadState('domcontentloaded');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  assert.ok((await page.locator('main').innerText()).includes('10,000'), 'English numbers');
  await check(page, 'licence-drawn-en');

  // A form posted without its token is refused.
  const forged = await page.request.post(`${BASE}/applications/${applicationId}/withdraw`, { form: { csrf: 'forged' }, maxRedirects: 0 });
  assert.equal(forged.status(), 403, 'a forged form is refused');

  await logOut(page);

  // 9. A certificate with a fee: plant quarantine for the rice (MARD-PPD, 350.000 ₫), paid
  //    online through the payment platform before the officer may decide it.
  await logIn(page, TRADER);
  // Back to Vietnamese (the switch above chose English for this browser).
  await page.goto(`${BASE}/language/vi?next=/applications/new`);
  assert.equal(await page.getAttribute('html', 'lang'), 'vi');
  await set('application_type', 'PQC');
  await set('direction', 'EX');
  await set('agency', 'MARD-PPD');
  await set('cp_id', 'PH-NFA-2026-0091');
  await set('cp_name', 'Luzon Rice Importers Corporation');
  await set('cp_street', '1850 Roxas Boulevard, Malate');
  await set('cp_city', 'Manila');
  await set('cp_post_code', '1004');
  await set('cp_country', 'PH');
  await set('export_country', 'VN');
  await set('import_country', 'PH');
  await set('valid_from', TODAY);
  await set('valid_to', NEXT_YEAR);
  await set('line_0_hs_code', '10063099');
  await set('line_0_description', 'Gạo trắng hạt dài 5% tấm, bao 50 kg');
  await set('line_0_quantity', '2000');
  await set('line_0_unit', 'TNE');
  await set('line_0_value', '1030000.00');
  await set('line_0_currency', 'USD');
  await page.locator('button[name="action"][value="submit"]:not([aria-hidden])').click();
  await page.waitForURL(/\/applications\/[0-9a-f-]{36}$/);
  const feeAppUrl = page.url();
  const feeAppId = feeAppUrl.split('/').pop();
  const dueText = await page.locator('main').innerText();
  assert.ok(dueText.includes('Chờ nộp phí'), `the application awaits its fee: ${dueText.slice(0, 600)}`);
  assert.ok(dueText.includes('350.000 ₫'), 'the fee is shown');
  const feeRef = (dueText.match(/FEE-\d{4}-\d{6}/) || [])[0];
  assert.ok(feeRef, 'a payment reference is shown');
  assert.equal(await page.locator('#pay-now').count(), 1, 'a "Pay now" button');
  await check(page, 'fee-due');
  await page.goto(`${BASE}/fees`);
  assert.ok((await page.content()).includes(feeRef), 'the fee is in the list of fees');
  await check(page, 'fees');

  // The officer sees it awaiting payment and cannot decide it.
  const ppdCtx = await viContext();
  const ppd = await ppdCtx.newPage();
  await logIn(ppd, PPD_OFFICER);
  await ppd.goto(`${BASE}/inbox?status=awaiting_payment`);
  assert.ok(await ppd.locator(`a[href="/inbox/${feeAppId}"]`).count() > 0, 'in the inbox, awaiting payment');
  await check(ppd, 'ppd-inbox-awaiting-payment');
  await ppd.goto(`${BASE}/inbox/${feeAppId}`);
  assert.equal(await ppd.locator('#fee-unpaid').count(), 1, 'the officer is told the fee is unpaid');
  assert.equal(await ppd.locator('input[name="action"]').count(), 0, 'no decision form');
  await check(ppd, 'ppd-application-unpaid');

  // With the portal's own policy enforced (no bypass), the "Pay now" form's answer takes the
  // browser to the platform: the policy names the platform as a form target.
  const strictCtx = await browser.newContext({ locale: 'vi-VN', extraHTTPHeaders: { 'Accept-Language': 'vi-VN,vi;q=0.9' } });
  const strict = await strictCtx.newPage();
  await logIn(strict, TRADER);
  await strict.goto(feeAppUrl);
  await Promise.all([
    strict.waitForURL((u) => u.toString().startsWith(`${PAYGATE}/pay/`)),
    strict.locator('#pay-now').click(),
  ]);
  await strictCtx.close();

  // The trader pays: off to the platform's page, "Pay", and back.
  await page.goto(feeAppUrl);
  await Promise.all([
    page.waitForURL((u) => u.toString().startsWith(`${PAYGATE}/pay/`)),
    page.locator('#pay-now').click(),
  ]);
  const platformText = await page.locator('main').innerText();
  assert.ok(platformText.includes(feeRef), `the platform shows the reference: ${platformText}`);
  assert.ok(platformText.includes('350.000 ₫'), 'and the amount');
  await check(page, 'platform-pay');
  await Promise.all([
    page.waitForURL(/\/payments\/return\?/),
    page.locator('button#pay').click(),
  ]);
  assert.ok(page.url().startsWith(`${BASE}/payments/return?`), `back at the window: ${page.url()}`);
  assert.ok(page.url().includes(`reference=${feeRef}`), 'with the reference');
  await check(page, 'payment-return');
  // Paid only once the platform's signed word is recorded: refresh until then (bounded).
  const deadline = Date.now() + 60_000;
  while (await page.locator('[data-outcome="paid"]').count() === 0) {
    assert.ok(Date.now() < deadline, `the payment is confirmed: ${(await page.locator('main').innerText()).slice(0, 400)}`);
    await page.waitForTimeout(500);
    await page.reload();
  }
  await check(page, 'payment-received');

  // Now the officer reviews and issues it.
  await ppd.goto(`${BASE}/inbox/${feeAppId}`);
  assert.equal(await ppd.locator('#fee-unpaid').count(), 0, 'no longer unpaid');
  assert.ok((await ppd.locator('main').innerText()).includes('Đã nộp'), 'the officer sees it paid');
  await check(ppd, 'ppd-application-paid');
  await ppd.locator('form:has(input[name="action"][value="review"]) button[type="submit"]').click();
  await ppd.waitForLoadState('domcontentloaded');
  const ppdIssue = ppd.locator('form:has(input[name="action"][value="issue"])');
  await ppdIssue.locator('input[name="valid_from"]').fill(TODAY);
  await ppdIssue.locator('input[name="valid_until"]').fill(NEXT_YEAR);
  await ppdIssue.locator('button[type="submit"]').click();
  await ppd.waitForLoadState('domcontentloaded');
  assert.ok(ppd.url().includes('done=issued') || ppd.url().includes('done=certificate'), `issued: ${ppd.url()}`);
  await check(ppd, 'ppd-issued');

  // The trader sees it issued and downloads the e-receipt, its signature and the certificate.
  await page.goto(feeAppUrl);
  assert.ok((await page.locator('main').innerText()).includes('Đã cấp'), 'issued');
  await check(page, 'fee-application-issued');
  for (const [selector, file] of [
    ['a[href$="/receipt.xml"]', 'receipt.xml'],
    ['a[href$="/receipt.p7s"]', 'receipt.p7s'],
    ['a[href="/fees/receipt-certificate.pem"]', 'receipt-certificate.pem'],
  ]) {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(selector).first().click(),
    ]);
    await download.saveAs(path.join(DOWNLOADS, file));
  }
  await page.goto(`${BASE}/fees?status=paid`);
  assert.ok((await page.content()).includes(feeRef), 'listed as paid');
  await check(page, 'fees-paid');
  await logOut(page);

  // The public dashboard, without logging in, in both languages.
  const publicCtx = await viContext();
  const visitor = await publicCtx.newPage();
  await visitor.goto(`${BASE}/dashboard`);
  assert.ok((await visitor.content()).includes('MOIT'), 'the dashboard names the agency');
  await check(visitor, 'dashboard');
  await visitor.locator('nav.lang a').click();
  await visitor.waitForLoadState('domcontentloaded');
  await check(visitor, 'dashboard-en');

  // The operator console's pages.
  const adminCtx = await viContext();
  const admin = await adminCtx.newPage();
  await logIn(admin, ADMIN);
  for (const p of ['', '/partners', '/messages', '/routing', '/parties', '/audit']) {
    const r = await admin.goto(`${BASE}/console${p}`);
    assert.equal(r.status(), 200, `console${p}`);
    await check(admin, `console${p.replace('/', '-') || '-overview'}`);
  }
  console.log('story: done');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  fs.writeFileSync(path.join(OUT, 'pages.json'), JSON.stringify(seen, null, 2));
  await browser.close();
}
process.exit(failed ? 1 : 0);
