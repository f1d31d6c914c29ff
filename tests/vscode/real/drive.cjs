// Drives code-server (started by run.sh) in headless chromium with playwright-core: the .vsix is
// installed, fib.py is in the workspace. Checks, as a user would see them: the status bar item
// reaches ready, typing shows ghost text, Tab accepts it (the saved file holds it), explain
// selection streams into a document beside the editor, and a missing model is an error toast.
// Screenshots: AUGURY_OUT/ghost-text.png, explain.png, missing-model.png (fail-*.png on failure).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const out = process.env.AUGURY_OUT;
const file = path.join(out, 'workspace', 'fib.py');
const original = fs.readFileSync(file, 'utf8');
const log = (...a) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.AUGURY_CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
  page.setDefaultTimeout(60000);
  let current = 'start';
  const step = (name) => { current = name; log(name); };
  try {
    step('open the workbench');
    await page.goto(process.env.AUGURY_URL);
    await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 180000 });

    step('open fib.py');
    await page.keyboard.press('Control+P');
    await page.waitForSelector('.quick-input-widget input');
    await page.keyboard.type('fib.py');
    await page.click('.quick-input-list .monaco-list-row[aria-label*="fib.py"]');
    await page.waitForSelector('.tab.active[aria-label*="fib.py"]');

    step('the status bar item reaches ready');
    const item = '[id*="augury.status"]';
    await page.waitForSelector(`${item} .codicon-sparkle`, { timeout: 180000 });
    log('status bar:', (await page.textContent(item)).trim());

    step('type and see the ghost text');
    await page.click('.editor-group-container .monaco-editor .view-lines');
    await page.keyboard.press('Control+End');
    await page.keyboard.type('    return fib', { delay: 60 });
    const ghostSel = '.monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text';
    await page.waitForSelector(ghostSel, { timeout: 90000 });
    await page.waitForTimeout(300);
    // The first line's ghost text is one .ghost-text-decoration (spans per token); further lines
    // are .ghost-text view zones, one per line.
    const ghost = (
      await page.evaluate(() => {
        const inline = [...document.querySelectorAll('.monaco-editor .ghost-text-decoration')].map((e) => e.textContent).join('');
        const below = [...document.querySelectorAll('.monaco-editor .ghost-text .view-line')].map((e) => e.textContent);
        return [inline, ...below].join('\n');
      })
    ).replace(/\u00a0/g, ' ');
    log('ghost text:', JSON.stringify(ghost));
    await page.screenshot({ path: path.join(out, 'ghost-text.png') });
    log('status bar:', (await page.textContent(item)).trim());

    step('Tab accepts it; the saved buffer holds it');
    await page.keyboard.press('Tab');
    await page.waitForTimeout(300);
    await page.keyboard.press('Control+S');
    let saved = original;
    for (let i = 0; i < 100 && saved === original; i++) {
      await page.waitForTimeout(100);
      saved = fs.readFileSync(file, 'utf8');
    }
    const typedLine = saved.slice(original.length).split('\n')[0];
    log('saved last line:', JSON.stringify(typedLine));
    const firstGhostLine = ghost.split('\n')[0];
    if (!typedLine.startsWith('    return fib') || typedLine.length <= '    return fib'.length)
      throw new Error(`Tab did not insert the suggestion: ${JSON.stringify(saved.slice(original.length))}`);
    if (firstGhostLine && !typedLine.includes(firstGhostLine.trim()))
      throw new Error(`the buffer ${JSON.stringify(typedLine)} lacks the ghost text ${JSON.stringify(firstGhostLine)}`);

    step('explain selection streams into a document beside the editor');
    await page.keyboard.press('Control+A');
    await page.keyboard.press('F1');
    await page.waitForSelector('.quick-input-widget input');
    await page.keyboard.type('Augury: Explain Selection');
    await page.waitForTimeout(500);
    await page.keyboard.press('Enter');
    await page.waitForSelector('.tab[aria-label*="Explain fib.py"]', { timeout: 30000 });
    const explained = await page.waitForFunction(
      () => {
        for (const g of document.querySelectorAll('.editor-group-container')) {
          if (!g.querySelector('.tab.active[aria-label*="Explain fib.py"]')) continue;
          const t = g.querySelector('.view-lines')?.textContent ?? '';
          if (t.length > 60 && !/explaining lines/.test(t)) return t;
        }
        return false;
      },
      undefined,
      { timeout: 240000, polling: 500 },
    );
    log('explanation starts:', JSON.stringify((await explained.jsonValue()).slice(0, 160)));
    await page.screenshot({ path: path.join(out, 'explain.png') });

    step('a missing model is an error toast and the status bar says so');
    const settingsFile = process.env.AUGURY_SETTINGS;
    const settings = JSON.parse(fs.readFileSync(settingsFile, 'utf8'));
    settings['augury.model'] = path.join(out, 'no-such-model.gguf');
    fs.writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
    const toastSaid = (text) => page.waitForFunction(
      (t) => (document.querySelector('.notifications-toasts')?.textContent ?? '').includes(t), text,
      { timeout: 15000, polling: 250 }).then(() => true, () => false);
    // code-server may not watch the settings file: reloading the window reads it (and restarts
    // the extension with it).
    if (!(await toastSaid('does not exist'))) {
      log('no change seen in 15 s: Developer: Reload Window');
      await page.keyboard.press('F1');
      await page.waitForSelector('.quick-input-widget input');
      await page.keyboard.type('Developer: Reload Window');
      await page.click('.quick-input-list .monaco-list-row[aria-label*="Reload Window"]');
      await page.waitForTimeout(3000);
      await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 180000 });
    }
    await page.waitForFunction(
      () => /does not exist/.test(document.querySelector('.notifications-toasts')?.textContent ?? ''),
      undefined,
      { timeout: 60000, polling: 250 },
    );
    await page.waitForSelector(`${item} .codicon-error`, { timeout: 30000 });
    await page.waitForTimeout(1000); // the toast's fade-in, for the screenshot
    const toast = await page.textContent('.notifications-toasts');
    log('toast:', JSON.stringify((toast.match(/augury: model[^.]*/) ?? [toast.slice(0, 200)])[0]));
    if (!toast.includes('no-such-model.gguf')) throw new Error(`the toast does not name the model: ${toast}`);
    await page.screenshot({ path: path.join(out, 'missing-model.png') });
    log('all checks passed');
  } catch (e) {
    await page.screenshot({ path: path.join(out, `fail-${current.replace(/\W+/g, '-')}.png`) }).catch(() => {});
    console.error(`FAIL [${current}]: ${e && e.stack ? e.stack : e}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

main();
