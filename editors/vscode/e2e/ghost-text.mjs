// End to end in a real VS Code (code-server) driven through headless Chromium: open a Python
// file, wait for the model, type, see ghost text, accept it with Tab, run the FIM command.
// Needs a running code-server with the .vsix installed (see ../README.md, "End to end") and
// playwright-core; not part of `npm test`.
//
//   CODE_SERVER_URL=http://127.0.0.1:8123 WORKSPACE=/tmp/ws SHOTS=/tmp/shots node e2e/ghost-text.mjs
import { chromium } from 'playwright-core';
import * as fs from 'node:fs';
import * as path from 'node:path';

const url = process.env.CODE_SERVER_URL ?? 'http://127.0.0.1:8123';
const workspace = process.env.WORKSPACE ?? '/tmp/ws';
const shots = process.env.SHOTS ?? '/tmp/ghostfill-e2e';
fs.mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`) });
const results = {};
try {
  await page.goto(`${url}/?folder=${encodeURIComponent(workspace)}`);
  await page.waitForSelector('.monaco-workbench', { timeout: 120000 });
  await page.waitForTimeout(3000);
  await page.keyboard.press('Control+P');
  await page.keyboard.type('stats.py');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'stats.py' }).first()
    .waitFor({ timeout: 30000 });
  await page.keyboard.press('Enter');
  await page.waitForSelector('.monaco-editor .view-lines', { timeout: 60000 });
  // The status bar item shows the sparkle icon once the model is loaded.
  const item = page.locator('.statusbar-item', { hasText: 'ghostfill' }).first();
  await item.waitFor({ timeout: 120000 });
  const started = Date.now();
  while (Date.now() - started < 120000) {
    if (await item.locator('.codicon-sparkle').count()) {
      break;
    }
    if (await item.locator('.codicon-error, .codicon-debug-disconnect').count()) {
      throw new Error(`the server did not start: ${await item.getAttribute('aria-label')}`);
    }
    await page.waitForTimeout(500);
  }
  results.statusBarReady = await item.innerText();
  await shot('1-ready');
  await page.locator('.monaco-editor .view-lines').first().click();
  // End of the indented line after stdev's docstring (the file ends with "    \n").
  await page.keyboard.press('Control+End');
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('End');
  await page.keyboard.type('m');
  const ghost = page.locator('.monaco-editor .ghost-text, .monaco-editor .ghost-text-decoration');
  await ghost.first().waitFor({ timeout: 90000 });
  results.ghostText = await ghost.allInnerTexts();
  results.statusBarAfter = await item.innerText();
  await shot('2-ghost-text');
  await page.keyboard.press('Tab');
  await page.waitForTimeout(1000);
  results.linesAfterTab = (await page.locator('.monaco-editor .view-lines .view-line').allInnerTexts())
    .map((l) => l.replace(/\u00a0/g, ' '));
  await shot('3-accepted');

  const command = async (title) => {
    await page.keyboard.press('Control+Shift+P');
    await page.keyboard.type(title);
    await page.waitForTimeout(800);
    await page.keyboard.press('Enter');
  };
  // Accepting ran the item's ghostfill.accepted command: the server counted it.
  await command('ghostfill: Show Statistics');
  const dialog = page.locator('.monaco-dialog-box');
  await dialog.waitFor({ timeout: 30000 });
  results.stats = await dialog.innerText();
  await shot('4-stats');
  await page.keyboard.press('Escape');

  // FIM at the cursor: a new line after `m = mean(values)`.
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+End');
  const text = () => page.locator('.monaco-editor .view-lines').first().innerText();
  const before = await text();
  await command('ghostfill: Fill In the Middle');
  const start = Date.now();
  while (Date.now() - start < 90000 && (await text()) === before) {
    await page.waitForTimeout(500);
  }
  results.linesAfterFim = (await page.locator('.monaco-editor .view-lines .view-line').allInnerTexts())
    .map((l) => l.replace(/\u00a0/g, ' ')).slice(-4);
  await shot('5-fim');
  console.log(JSON.stringify(results, null, 2));
  const check = (ok, what) => {
    if (!ok) {
      console.error(`FAILED: ${what}`);
      process.exitCode = 1;
    }
  };
  const ghostText = results.ghostText.join('').replace(/\u00a0/g, ' ').trim();
  check(ghostText !== '', 'ghost text after typing');
  check(results.linesAfterTab.some((l) => l.trim().startsWith('m') && l.includes(ghostText)),
    'Tab inserted the ghost text');
  check(/\d ms$/.test(results.statusBarAfter.trim()), 'status bar shows the last latency');
  check(/[1-9]\d* accepted/.test(results.stats), 'the server counted the accept');
  check(results.linesAfterFim.join('\n') !== results.linesAfterTab.slice(-4).join('\n'),
    'FIM changed the document');
} catch (e) {
  await shot('error').catch(() => undefined);
  console.log(JSON.stringify(results, null, 2));
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
