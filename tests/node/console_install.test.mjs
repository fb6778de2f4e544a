// The console's first-superuser flow in headless Chromium: a fresh
// `cruder serve` prints a one-time link to #/install; opening it shows the
// form, a mismatched confirmation is shown on its field, a server-side
// validation error on its field, and a valid submission creates the
// superuser and lands signed in. The spent link then refuses a second use.
// Screenshots go to build/console-shots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { openBrowser, screenshotEach, shot as shotOf, unnamedControls } from './lib/browser.mjs';

const LINK = /http:\/\/[^/\s]+\/_\/#\/install\?token=[A-Za-z0-9_-]+/;
const EMAIL = 'first@example.com';
const PASSWORD = 'first-pass-123';

let srv;
let b;
let page;

before(async () => {
  srv = await startServer();
  b = await openBrowser();
  page = b.page;
});

after(async () => {
  await b?.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

screenshotEach(() => page, 'install');
const shot = (name) => shotOf(page, name);

async function installLink() {
  for (let i = 0; i < 100 && !LINK.test(srv.stderr()); i++) await new Promise((r) => setTimeout(r, 20));
  const m = srv.stderr().match(LINK);
  assert.ok(m, `no install link in stderr:\n${srv.stderr()}`);
  return m[0];
}

test('the install link creates the first superuser and signs in', async () => {
  const link = await installLink();
  await page.goto(link);
  await page.getByRole('heading', { name: 'Create the first superuser' }).waitFor();
  const email = page.getByLabel('Email');
  const password = page.getByLabel('Password', { exact: true });
  const confirm = page.getByLabel('Confirm password');
  assert.ok(await email.evaluate((el) => el === document.activeElement));
  assert.deepEqual(await unnamedControls(page), []);

  // a confirmation that does not match: on its field, nothing sent
  await email.fill(EMAIL);
  await password.fill(PASSWORD);
  await confirm.fill('something-else');
  await page.getByRole('button', { name: 'Create and sign in' }).click();
  await page.getByText('Values don’t match.').waitFor();
  assert.equal(await confirm.getAttribute('aria-invalid'), 'true');

  // the server's validation error on its field (the token is handed back)
  await email.fill('not-an-email');
  await confirm.fill(PASSWORD);
  await page.getByRole('button', { name: 'Create and sign in' }).click();
  await page.locator('input[name="email"][aria-invalid="true"]').waitFor();
  assert.equal(await confirm.getAttribute('aria-invalid'), null);
  const described = await email.getAttribute('aria-describedby');
  assert.equal(await page.locator(`#${described}`).innerText(), 'Must be a valid email address.');
  await shot('install-01-field-error');

  await email.fill(EMAIL);
  await page.getByRole('button', { name: 'Create and sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.getByText('No collections yet.').waitFor();
  assert.equal(new URL(page.url()).hash, '#/');
  assert.equal(await page.locator('header .hint').innerText(), EMAIL);
  await shot('install-02-signed-in');

  // the same link again, signed out: spent
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.goto(link);
  await page.getByLabel('Email').fill('second@example.com');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Confirm password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create and sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'already used or has expired' }).waitFor();
  await shot('install-03-spent');
});
