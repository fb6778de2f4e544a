// Browser helpers for the console's end-to-end tests: Debian's chromium,
// headless, driven by playwright-core (never a downloaded browser build), a
// screenshot of every test as an artifact, and the checks every view must
// pass (each control has a name, nothing wider than the viewport).
//
//   const b = await openBrowser();          // b.page, b.newPage(), b.close()
//   screenshotEach(() => b.page, 'files');  // build/console-shots/files-<test>.png
//   await signIn(b.page, srv.url, email, password);
import { afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SHOTS = path.join(ROOT, 'build/console-shots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Generous: under ASan on a loaded 2-core box a save can take seconds.
const TIMEOUT_MS = 15_000;

/**
 * Launches headless chromium with one 1280x860 page whose page errors fail
 * the test. Resolves to { browser, page, newPage(), close() }; newPage()
 * opens another page in its own context (a second person, signed in apart).
 */
export async function openBrowser() {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} missing: make deps installs Debian's chromium`);
  fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const newPage = async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await ctx.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
    return page;
  };
  return { browser, page: await newPage(), newPage, close: () => browser.close() };
}

/** Saves a full-page screenshot as build/console-shots/<name>.png. */
export function shot(page, name) {
  return page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** After every test of the file, a screenshot named `<prefix>-<test name>` (pass or fail). */
export function screenshotEach(getPage, prefix) {
  afterEach(async (t) => {
    const page = getPage();
    if (!page || page.isClosed()) return;
    const slug = t.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
    await shot(page, `${prefix}-${slug}`);
  });
}

/** Signs in to the console at `url` as a superuser and waits for the shell. */
export async function signIn(page, url, email, password) {
  await page.goto(`${url}/_/`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/**
 * The controls and links on the page (dialogs included) that have no
 * accessible name: no label, no aria-label(ledby), no text. [] is the goal.
 */
export function unnamedControls(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button, a[href], summary, progress')]
      .filter((el) => el.type !== 'hidden' && el.getClientRects().length)
      .filter(
        (el) =>
          !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.textContent.trim()),
      )
      .map((el) => el.outerHTML.slice(0, 160)),
  );
}

/**
 * The elements sticking out past the viewport's right edge, except inside
 * containers meant to scroll sideways (the records table). [] is the goal.
 */
export function overflowing(page) {
  return page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    const out = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > w + 1 && !el.closest('.table-wrap'))
      .map((el) => `${el.tagName}.${el.className}:${Math.round(el.getBoundingClientRect().right)}`);
    if (document.documentElement.scrollWidth > w) out.push(`page scrollWidth ${document.documentElement.scrollWidth} > ${w}`);
    return out;
  });
}
