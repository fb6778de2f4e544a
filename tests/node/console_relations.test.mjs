// The record form's relation pickers in headless Chromium against the real
// binary: typing searches the related collection on the server (a record
// beyond the first page of picks is found, quotes in the text are data, not
// filter syntax), picking and removing with the mouse and with the keyboard,
// a single relation replaced by a new pick, a multiple one capped at its
// maxSelect, and the saved ids read back through the API.
// Screenshots go to build/console-shots/relations-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, superuserToken } from './lib/server.mjs';
import { openBrowser, overflowing, screenshotEach, shot, signIn, unnamedControls } from './lib/browser.mjs';
import { client } from './lib/api.mjs';

const EMAIL = 'rel@example.com';
const PASSWORD = 'relations-pass-1';
const AUTHORS = 24;

let srv;
let token;
let b;
let page;
const authors = {};

const api = (method, p, body) => client(srv, token).call(method, p, { body });

before(async () => {
  srv = await startServer();
  token = await superuserToken(srv, EMAIL, PASSWORD);
  const made = await api('POST', '/api/collections', {
    name: 'authors',
    type: 'base',
    fields: [{ name: 'name', type: 'text', presentable: true }],
  });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  const names = [...Array.from({ length: AUTHORS }, (_, i) => `Author ${String(i + 1).padStart(2, '0')}`), "Pat O'Brien", 'Zed Shaw'];
  for (const name of names) {
    const r = await api('POST', '/api/collections/authors/records', { name });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    authors[name] = r.body.id;
  }
  const books = await api('POST', '/api/collections', {
    name: 'books',
    type: 'base',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'author', type: 'relation', collectionId: made.body.id, maxSelect: 1 },
      { name: 'reviewers', type: 'relation', collectionId: made.body.id, maxSelect: 3 },
    ],
  });
  assert.equal(books.status, 200, JSON.stringify(books.body));
  b = await openBrowser();
  page = b.page;
  await signIn(page, srv.url, EMAIL, PASSWORD);
});

after(async () => {
  await b?.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

screenshotEach(() => page, 'relations');

// Each test starts on a freshly loaded records page, whatever the last one left open.
async function openBooks() {
  await page.goto(`${srv.url}/_/#/c/books`);
  await page.reload();
  await page.getByRole('button', { name: 'New record' }).waitFor();
}

const dialog = () => page.getByRole('dialog');
const group = (name) => dialog().getByRole('group', { name, exact: true });
const picks = (name) => group(name).getByRole('list', { name: 'Matching records of authors' });
const chosen = (name) => group(name).getByRole('list', { name: `Chosen for ${name}` }).getByRole('listitem');

test('single relation: typing searches the server, a pick is shown and saved', async () => {
  await openBooks();
  await page.getByRole('button', { name: 'New record' }).click();
  await dialog().getByLabel('title').fill('Zed’s book');
  const search = group('author').getByLabel('Search authors');

  // A click lists the first page of picks; Zed, created last, is not on it.
  await search.click();
  await picks('author').getByRole('button').first().waitFor();
  assert.equal(await picks('author').getByRole('button').count(), 10);
  assert.equal(await picks('author').getByRole('button', { name: /Zed Shaw/ }).count(), 0);
  await group('author').getByRole('status').filter({ hasText: `10 of ${AUTHORS + 2} matches` }).waitFor();

  const searched = page.waitForRequest((r) => new URL(r.url()).searchParams.get('filter')?.includes('name ~ "zed"'));
  await search.fill('zed');
  await searched;
  await picks('author').getByRole('button', { name: `Zed Shaw (${authors['Zed Shaw']})` }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[aria-label="Matching records of authors"] button').length === 1);
  await picks('author').getByRole('button', { name: /Zed Shaw/ }).click();

  assert.deepEqual(await chosen('author').allTextContents(), [`Zed Shaw (${authors['Zed Shaw']})✕`]);
  assert.equal(await search.inputValue(), '');
  assert.deepEqual(await unnamedControls(page), []);
  await dialog().getByRole('button', { name: 'Create record' }).click();
  await dialog().waitFor({ state: 'detached' });

  // The table shows the related record by its label, through expand.
  await page.getByRole('cell', { name: `Zed Shaw (${authors['Zed Shaw']})` }).waitFor();
  const list = await api('GET', '/api/collections/books/records');
  assert.equal(list.body.items.length, 1);
  assert.equal(list.body.items[0].author, authors['Zed Shaw']);
  assert.deepEqual(list.body.items[0].reviewers, []);
});

test('a quote typed in the search is text to match, not filter syntax', async () => {
  await openBooks();
  await page.getByRole('button', { name: 'New record' }).click();
  await group('author').getByLabel('Search authors').fill("o'bri");
  await picks('author').getByRole('button', { name: `Pat O'Brien (${authors["Pat O'Brien"]})` }).waitFor();
  assert.equal(await group('author').getByRole('alert').count(), 0);
  await group('author').getByLabel('Search authors').fill('no such author');
  await group('author').getByRole('status').filter({ hasText: '0 to pick.' }).waitFor();
  // Escape closes the list of picks, not the form around it.
  await page.keyboard.press('Escape');
  await picks('author').waitFor({ state: 'detached' });
  assert.equal(await dialog().isVisible(), true);
  await page.keyboard.press('ArrowDown');
  await group('author').getByRole('status').filter({ hasText: '0 to pick.' }).waitFor();
  await dialog().getByRole('button', { name: 'Cancel' }).click();
  await dialog().waitFor({ state: 'detached' });
});

test('multiple relation with the keyboard: pick up to maxSelect, remove one, save', async () => {
  await openBooks();
  await page.getByRole('button', { name: 'New record' }).click();
  await dialog().getByLabel('title').fill('Reviewed');
  const search = group('reviewers').getByLabel('Search authors');
  const pickByKeyboard = async (text, name) => {
    await search.focus();
    await page.keyboard.type(text);
    await page.waitForFunction(
      (n) => {
        const list = [...document.querySelectorAll('[aria-label="Matching records of authors"] button')];
        return list.length === 1 && list[0].textContent.startsWith(n);
      },
      name,
    );
    await page.keyboard.press('ArrowDown');
    assert.match(await page.evaluate(() => document.activeElement.textContent), new RegExp(`^${name}`));
    await page.keyboard.press('Enter');
    await chosen('reviewers').filter({ hasText: name }).waitFor();
  };
  await pickByKeyboard('Author 01', 'Author 01');
  await pickByKeyboard('Author 02', 'Author 02');
  // Focus is back in the search box after a pick, so typing goes on at once.
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label') || document.activeElement.labels?.[0]?.textContent), 'Search authors');
  await pickByKeyboard('Author 03', 'Author 03');
  assert.equal(await chosen('reviewers').count(), 3);
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    await search.scrollIntoViewIfNeeded();
    await shot(page, 'relations-390');
    assert.deepEqual(await overflowing(page), []);
  } finally {
    await page.setViewportSize({ width: 1280, height: 860 });
  }
  assert.equal(await search.isDisabled(), true, 'a fourth pick is refused: maxSelect is 3');

  await group('reviewers').getByRole('button', { name: `Remove Author 02 (${authors['Author 02']})` }).focus();
  await page.keyboard.press('Enter');
  assert.deepEqual(await chosen('reviewers').allTextContents(), [`Author 01 (${authors['Author 01']})✕`, `Author 03 (${authors['Author 03']})✕`]);
  assert.equal(await search.isDisabled(), false);

  await dialog().getByRole('button', { name: 'Create record' }).click();
  await dialog().waitFor({ state: 'detached' });
  const rec = (await api('GET', `/api/collections/books/records?filter=${encodeURIComponent("title='Reviewed'")}`)).body.items[0];
  assert.deepEqual(rec.reviewers, [authors['Author 01'], authors['Author 03']]);
  assert.equal(rec.author, '');
});

test('editing: saved relations show their labels; a new pick replaces a single relation', async () => {
  const rec = (await api('GET', `/api/collections/books/records?filter=${encodeURIComponent("title='Reviewed'")}`)).body.items[0];
  const zeds = (await api('GET', `/api/collections/books/records?filter=${encodeURIComponent("title='Zed’s book'")}`)).body.items[0];
  await openBooks();
  await page.getByRole('button', { name: `Edit ${zeds.id}` }).click();
  // Labels of saved ids are read from the server, not just the bare ids.
  await chosen('author').filter({ hasText: 'Zed Shaw' }).waitFor();
  await group('author').getByLabel('Search authors').fill('Author 07');
  await picks('author').getByRole('button', { name: /^Author 07/ }).click();
  assert.deepEqual(await chosen('author').allTextContents(), [`Author 07 (${authors['Author 07']})✕`]);
  await group('author').getByRole('button', { name: /^Remove Author 07/ }).click();
  assert.equal(await chosen('author').count(), 0);
  await group('author').getByText('None chosen.').waitFor();
  await group('author').getByLabel('Search authors').fill('Author 08');
  await picks('author').getByRole('button', { name: /^Author 08/ }).click();
  await dialog().getByRole('button', { name: 'Save record' }).click();
  await dialog().waitFor({ state: 'detached' });
  assert.equal((await api('GET', `/api/collections/books/records/${zeds.id}`)).body.author, authors['Author 08']);

  await page.getByRole('button', { name: `Edit ${rec.id}` }).click();
  await chosen('reviewers').filter({ hasText: 'Author 03' }).waitFor();
  assert.equal(await chosen('reviewers').count(), 2);
  await dialog().getByRole('button', { name: 'Cancel' }).click();
});
