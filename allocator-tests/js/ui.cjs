#!/usr/bin/env node
// Drives Debian's Chromium (headless, through the npm `playwright-core`,
// which downloads no browser) over memprof's /debug/pprof/ui page, for
// allocator-tests/tests/http_ui.rs, and prints what it measured as JSON.
//
// Usage: ui.cjs URL FUNCTION SCREENSHOT.png
//
// On the flame graph of inuse_space it finds the widest frame of FUNCTION
// (a frame whose name is FUNCTION or ends in `::` + FUNCTION), clicks it
// (inferno zooms), resets the zoom, types FUNCTION in the page's search
// box (inferno highlights), and saves a screenshot. Output:
// {
//   "title": "...", "types": ["alloc_objects", ...], "tables": 4,
//   "frame": "http_example::load_catalog", "frameTitle": "... (N bytes, P%)",
//   "frames": 123,                        // frames drawn in the graph
//   "before": { "width": px, "widthAttr": "12.3%", "hidden": 0 },
//   "zoomed": { "width": px, "widthAttr": "100.0000%", "hidden": n, "fullWidth": px },
//   "unzoomed": { ... },
//   "search": { "fill": "rgb(...)", "origFill": "rgb(...)", "matched": "Matched: P%",
//               "rowsMatched": n },
//   "switch": [{ "kind": "alloc_objects", "graphWidth": px, "graphVisible": true,
//                "tablesShown": ["alloc_objects"] }, ...],   // each type selected in turn
//   "pwned": false,                       // window.pwned set by some script
//   "errors": ["uncaught exceptions and console errors, if any"]
// }
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function fail(msg) {
  process.stderr.write(`ui.cjs: ${msg}\n`);
  process.exit(2);
}

async function main() {
  const [url, fn, shot] = process.argv.slice(2);
  if (!url || !fn || !shot) fail('usage: ui.cjs URL FUNCTION SCREENSHOT.png');
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    fail(`the npm package playwright-core is not installed: run \`npm ci\` in ${__dirname} (${e.message})`);
  }
  if (!fs.existsSync(CHROMIUM)) {
    fail(`no Chromium at ${CHROMIUM}: \`apt-get install chromium\` (Debian)`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'memprof-ui-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 1000 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const errors = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(30000);
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    // Every request the page makes: only the page itself may be fetched.
    page.on('request', (r) => {
      if (r.url() !== url) errors.push(`request: ${r.url()}`);
    });
    await page.goto(url, { waitUntil: 'load' });
    const out = { errors };
    out.title = await page.title();
    out.types = await page.$$eval('#type option', (os) => os.map((o) => o.textContent));
    out.tables = await page.$$eval('#top table.top', (ts) => ts.length);
    await page.selectOption('#type', { label: 'inuse_space' });
    const id = await page.$eval('#type', (s) => 'flame-' + s.value);
    const frame = await (await page.$(`iframe#${id}`)).contentFrame();
    // inferno's init (on the SVG's load) has run and laid out the text.
    await frame.waitForFunction(() =>
      typeof total_samples === 'number' && typeof unzoom === 'function');
    await page.waitForTimeout(200);

    // The widest frame of `fn`, marked for the steps below.
    const found = await frame.evaluate((fn) => {
      const gs = Array.from(document.querySelectorAll('#frames > g'));
      let best = null;
      let bestW = -1;
      for (const g of gs) {
        const name = g.querySelector('title').textContent.replace(/ \([^(]*\)$/, '');
        if (name !== fn && !name.endsWith('::' + fn)) continue;
        const w = parseInt(g.querySelector('rect').getAttribute('fg:w'), 10);
        if (w > bestW) { best = g; bestW = w; }
      }
      if (!best) return null;
      best.setAttribute('data-test', 'target');
      return {
        name: best.querySelector('title').textContent.replace(/ \([^(]*\)$/, ''),
        title: best.querySelector('title').textContent,
        frames: gs.length,
      };
    }, fn);
    if (!found) {
      out.frame = null;
      out.frames = await frame.$$eval('#frames > g', (gs) => gs.length);
      process.stdout.write(JSON.stringify(out, null, 1) + '\n');
      return;
    }
    out.frame = found.name;
    out.frameTitle = found.title;
    out.frames = found.frames;

    const measure = () => frame.evaluate(() => {
      const g = document.querySelector('[data-test=target]');
      const r = g.querySelector('rect');
      const all = document.getElementById('frames');
      return {
        width: r.getBoundingClientRect().width,
        widthAttr: r.getAttribute('width'),
        hidden: document.querySelectorAll('#frames > g.hide').length,
        targetHidden: g.classList.contains('hide'),
        fullWidth: all.getBoundingClientRect().width,
      };
    });
    out.before = await measure();

    // Click the frame: inferno zooms to it.
    await frame.click('[data-test=target]');
    await page.waitForTimeout(200);
    out.zoomed = await measure();
    await page.screenshot({ path: shot.replace(/\.png$/, '') + '-zoomed.png' });

    // The page's "Reset zoom" button.
    await page.click('#unzoom');
    await page.waitForTimeout(200);
    out.unzoomed = await measure();

    // Search from the page's box: the frame's fill changes.
    await page.fill('#search', fn);
    await page.waitForTimeout(200);
    out.search = await frame.evaluate(() => {
      const r = document.querySelector('[data-test=target] rect');
      return {
        fill: r.getAttribute('fill'),
        origFill: r.getAttribute('fg:orig_fill'),
        matched: document.getElementById('matched').textContent,
      };
    });
    out.search.rowsMatched = await page.$$eval('#top div.top:not(.off) tr.match', (rs) => rs.length);
    out.search.pageMatched = await page.$eval('#matched', (m) => m.textContent);
    await page.screenshot({ path: shot });
    // Markup echoed from a profile must not run (tests set `top.pwned`).
    out.pwned = await page.evaluate(() => window.pwned !== undefined);

    // Every sample type: its graph laid out at full width, its table alone.
    out.switch = [];
    for (const kind of out.types) {
      await page.selectOption('#type', { label: kind });
      await page.waitForTimeout(100);
      const t = await page.$eval('#type', (s) => s.value);
      const el = await page.$(`#flame-${t}`);
      const f = (await el.evaluate((e) => e.tagName)) === 'IFRAME' ? await el.contentFrame() : null;
      out.switch.push({
        kind,
        graphWidth: f ? await f.$eval('#frames', (e) => e.getBoundingClientRect().width) : 0,
        graphVisible: await el.evaluate((e) => getComputedStyle(e).visibility === 'visible'),
        tablesShown: await page.$$eval('#top div.top:not(.off)', (ds) => ds.map((d) => d.dataset.kind)),
      });
    }
    process.stdout.write(JSON.stringify(out, null, 1) + '\n');
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().catch((e) => fail(e.stack || String(e)));
