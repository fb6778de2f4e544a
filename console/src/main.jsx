// The console's entry point: superuser sign-in, then the shell (collections
// sidebar, records, collection settings, server view), routed by the hash so
// the server only ever serves index.html.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { pb, errorText, fieldErrors } from './api.js';
import { Field, go, useRoute } from './ui.jsx';
import { CollectionEditor } from './collections.jsx';
import { Records } from './records.jsx';
import { ServerView } from './server.jsx';

function Login({ onDone }) {
  const email = useRef(null);
  // autofocus only acts on page load; signing out re-mounts the form later.
  useEffect(() => email.current?.focus(), []);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    setBusy(true);
    setError('');
    try {
      await pb
        .collection('_superusers')
        .authWithPassword(String(form.get('email')), String(form.get('password')));
      onDone();
    } catch (err) {
      setError(err.status === 400 ? 'Wrong email or password.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login panel" id="main">
      <h1>Cruder console</h1>
      <form onSubmit={submit}>
        <Field label="Email" name="email" type="email" autoComplete="username" required inputRef={email} />
        <Field label="Password" name="password" type="password" autoComplete="current-password" required />
        {error && (
          <p className="err" role="alert">
            {error}
          </p>
        )}
        <button className="primary" type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

/**
 * The first superuser, created with the one-time token of the link that
 * `cruder serve` prints on a fresh data directory; then signed in.
 */
function Install({ token, onDone }) {
  const email = useRef(null);
  useEffect(() => email.current?.focus(), []);
  const [errors, setErrors] = useState({});
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const body = {
      email: String(form.get('email')),
      password: String(form.get('password')),
      passwordConfirm: String(form.get('passwordConfirm')),
    };
    setError('');
    setErrors({});
    if (body.password !== body.passwordConfirm) {
      setErrors({ passwordConfirm: 'Values don’t match.' });
      return;
    }
    setBusy(true);
    try {
      // The token stands in for a superuser's, for this one create only.
      await pb.collection('_superusers').create(body, { headers: { Authorization: token } });
      await pb.collection('_superusers').authWithPassword(body.email, body.password);
      go('');
      onDone();
    } catch (err) {
      const errs = fieldErrors(err);
      setErrors(errs);
      if (err.status === 403) setError('This install link was already used or has expired: sign in, or restart the server for a new link.');
      else if (!Object.keys(errs).length) setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login panel" id="main">
      <h1>Create the first superuser</h1>
      <p className="hint">This link works once. The superuser can sign in to this console and manage everything.</p>
      <form onSubmit={submit} noValidate>
        <Field label="Email" name="email" type="email" autoComplete="username" required inputRef={email} error={errors.email} />
        <Field label="Password" name="password" type="password" autoComplete="new-password" required error={errors.password} />
        <Field
          label="Confirm password"
          name="passwordConfirm"
          type="password"
          autoComplete="new-password"
          required
          error={errors.passwordConfirm}
        />
        {error && (
          <p className="err" role="alert">
            {error}
          </p>
        )}
        <button className="primary" type="submit" disabled={busy}>
          Create and sign in
        </button>
      </form>
    </main>
  );
}

function Shell({ onSignOut }) {
  const route = useRoute();
  const [collections, setCollections] = useState(null);
  const [error, setError] = useState('');
  const reload = async () => {
    try {
      setCollections(await pb.collections.getFullList({ sort: 'name' }));
      setError('');
    } catch (err) {
      if (err.status === 401) onSignOut();
      else setError(errorText(err));
    }
  };
  useEffect(() => {
    reload();
  }, []);

  const parts = route.split('/');
  const current = parts[0] === 'c' ? parts[1] : null;
  const coll = collections?.find((c) => c.name === current);
  // A collection made elsewhere (another tab, the API) since the list was read.
  useEffect(() => {
    if (current && collections && !coll) reload();
  }, [current]);
  let view;
  if (parts[0] === 'server') view = <ServerView />;
  else if (parts[0] === 'new') view = <CollectionEditor key="new" collections={collections || []} onSaved={reload} />;
  else if (current && collections && !coll) view = <p role="alert">No collection named “{current}”.</p>;
  else if (coll && parts[2] === 'settings')
    view = <CollectionEditor key={coll.id} collection={coll} collections={collections} onSaved={reload} />;
  else if (coll) view = <Records key={coll.id} collection={coll} collections={collections} />;
  else if (collections)
    view = (
      <div className="panel">
        <h2>Collections</h2>
        <p>{collections.some((c) => !c.system) ? 'Pick a collection on the left.' : 'No collections yet.'}</p>
        <a className="btn" href="#/new">
          New collection
        </a>
      </div>
    );

  return (
    <div className="layout">
      <a className="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main').focus())}>
        Skip to content
      </a>
      <header className="top">
        <h1>Cruder</h1>
        <nav aria-label="Sections">
          <a href="#/" aria-current={parts[0] !== 'server' ? 'page' : undefined}>
            Collections
          </a>
          <a href="#/server" aria-current={parts[0] === 'server' ? 'page' : undefined}>
            Server
          </a>
        </nav>
        <span className="hint">{pb.authStore.record?.email}</span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <aside className="side" aria-label="Collections">
        <a className="btn" href="#/new">
          + New collection
        </a>
        {error && (
          <p className="err" role="alert">
            {error}
          </p>
        )}
        {!collections && !error && <p className="hint">Loading…</p>}
        <ul>
          {(collections || []).map((c) => (
            <li key={c.id}>
              <a href={`#/c/${encodeURIComponent(c.name)}`} aria-current={c.name === current ? 'page' : undefined}>
                {c.name}
                <span className="type">{c.type}</span>
              </a>
            </li>
          ))}
        </ul>
      </aside>
      <main className="content" id="main" tabIndex={-1}>
        {view}
      </main>
    </div>
  );
}

function App() {
  const route = useRoute();
  const [signedIn, setSignedIn] = useState(pb.authStore.isValid && pb.authStore.isSuperuser);
  const signOut = () => {
    pb.authStore.clear();
    setSignedIn(false);
    go('');
  };
  if (signedIn) return <Shell onSignOut={signOut} />;
  const install = route.match(/^install\?(?:.*&)?token=([^&]+)/);
  if (install) return <Install token={install[1]} onDone={() => setSignedIn(true)} />;
  return <Login onDone={() => setSignedIn(true)} />;
}

// Files dropped beside a drop zone would make the browser open them in place of the console.
for (const type of ['dragover', 'drop']) {
  addEventListener(type, (e) => {
    if (e.dataTransfer?.types.includes('Files')) e.preventDefault();
  });
}

render(<App />, document.getElementById('app'));
