// Records of one collection: a server-paginated table sorted by its headers,
// filtered with the server's filter language, with a choice of columns; a
// form generated from the schema whose saves send If-Match, so a record
// changed meanwhile by someone else shows both versions (412) instead of
// being overwritten.
import { useEffect, useRef, useState } from 'preact/hooks';
import { pb, errorText, etagOf, fieldErrors, sendForm } from './api.js';
import { Confirm, Dialog, Field, useId } from './ui.jsx';
import { Tabs } from './collections.jsx';

const PER_PAGE = 20;
// Internal to auth records; never shown or sent by the form.
const SKIP_FORM = new Set(['id', 'tokenKey']);

export function display(v) {
  if (v === null || v === undefined || v === '') return '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return v.map(display).join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function formFields(collection) {
  return collection.fields.filter(
    (f) => !SKIP_FORM.has(f.name) && f.type !== 'autodate' && !(f.system && f.hidden && f.type !== 'password'),
  );
}

function ColumnPicker({ fields, columns, onChange }) {
  return (
    <details className="picker">
      <summary className="btn">Columns</summary>
      <fieldset className="panel">
        <legend>Shown columns</legend>
        {fields.map((f) => (
          <Field
            key={f.name}
            type="checkbox"
            label={f.name}
            checked={columns.includes(f.name)}
            onChange={(e) =>
              onChange(e.target.checked ? fields.map((x) => x.name).filter((n) => n === f.name || columns.includes(n)) : columns.filter((n) => n !== f.name))
            }
          />
        ))}
      </fieldset>
    </details>
  );
}

/** The records view of `collection`. */
export function Records({ collection, collections }) {
  const listable = [{ name: 'id', type: 'text' }, ...collection.fields.filter((f) => f.name !== 'id' && f.type !== 'password' && !f.hidden)];
  const colKey = `cruder.columns.${collection.id}`;
  const [columns, setColumns] = useState(() => {
    try {
      const saved = JSON.parse(localStorage.getItem(colKey));
      if (Array.isArray(saved)) return saved;
    } catch {
      // unreadable choice: fall back to the default
    }
    return listable.slice(0, 6).map((f) => f.name);
  });
  const [page, setPage] = useState(1);
  const [sort, setSort] = useState('');
  const [filterText, setFilterText] = useState('');
  const [filter, setFilter] = useState('');
  const [result, setResult] = useState(null);
  const [listError, setListError] = useState('');
  const [editing, setEditing] = useState(null);
  const [deleting, setDeleting] = useState(null);
  const [status, setStatus] = useState('');
  const filterId = useId('flt');

  const loads = useRef(0);
  const load = async () => {
    // Answers can overtake each other (two quick clicks on a header): only the latest is shown.
    const n = ++loads.current;
    try {
      const expand = collection.fields.filter((f) => f.type === 'relation').map((f) => f.name).join(',');
      const r = await pb.collection(collection.name).getList(page, PER_PAGE, { sort, filter, skipTotal: false, ...(expand ? { expand } : {}) });
      if (n !== loads.current) return;
      setResult(r);
      setListError('');
    } catch (err) {
      if (n === loads.current) setListError(errorText(err));
    }
  };
  useEffect(() => {
    load();
  }, [page, sort, filter]);

  const chooseColumns = (cols) => {
    setColumns(cols);
    localStorage.setItem(colKey, JSON.stringify(cols));
  };
  const clickSort = (name) => {
    setSort(sort === name ? `-${name}` : sort === `-${name}` ? '' : name);
    setPage(1);
  };
  const shown = listable.filter((f) => columns.includes(f.name));
  // Related records by their labels when the server expanded them, bare ids otherwise.
  const cell = (f, r) => {
    const x = f.type === 'relation' && r.expand?.[f.name];
    if (!x) return display(r[f.name]);
    const target = collections.find((c) => c.id === f.collectionId);
    return [].concat(x).map((y) => recordLabel(target, y)).join(', ');
  };

  const remove = async (yes) => {
    const rec = deleting;
    setDeleting(null);
    if (!yes) return;
    try {
      await pb.collection(collection.name).delete(rec.id);
      setStatus(`Deleted ${rec.id}.`);
      load();
    } catch (err) {
      setStatus(errorText(err));
    }
  };

  return (
    <div>
      <Tabs name={collection.name} active="records" />
      <h2>{collection.name}</h2>
      <div className="row" style={{ marginBottom: '8px' }}>
        <form
          className="row grow"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            setPage(1);
            setFilter(filterText.trim());
          }}
        >
          <label className="sr" for={filterId}>
            Filter
          </label>
          <input
            id={filterId}
            className="grow"
            type="search"
            placeholder={`Filter, e.g. ${listable[1]?.name || 'id'} != ''`}
            value={filterText}
            aria-invalid={listError ? 'true' : undefined}
            aria-describedby={listError ? `${filterId}-err` : undefined}
            onInput={(e) => setFilterText(e.target.value)}
          />
          <button type="submit">Search</button>
        </form>
        <ColumnPicker fields={listable} columns={columns} onChange={chooseColumns} />
        <button type="button" className="primary" onClick={() => setEditing({})}>
          New record
        </button>
      </div>
      {listError && (
        <p className="err" id={`${filterId}-err`} role="alert">
          {listError}
        </p>
      )}
      <p role="status" className="hint">
        {status}
      </p>
      <div className="table-wrap">
        <table>
          <caption className="sr">Records of {collection.name}</caption>
          <thead>
            <tr>
              {shown.map((f) => {
                const dir = sort === f.name ? 'ascending' : sort === `-${f.name}` ? 'descending' : undefined;
                return (
                  <th key={f.name} aria-sort={dir || 'none'} scope="col">
                    <button type="button" onClick={() => clickSort(f.name)}>
                      {f.name}
                      {dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : ''}
                    </button>
                  </th>
                );
              })}
              <th scope="col">
                <span className="sr">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {result?.items.map((r) => (
              <tr key={r.id}>
                {shown.map((f) => (
                  <td key={f.name} title={cell(f, r)}>
                    {cell(f, r)}
                  </td>
                ))}
                <td>
                  <button type="button" className="link" onClick={() => setEditing(r)} aria-label={`Edit ${r.id}`}>
                    Edit
                  </button>
                  <button type="button" className="link" onClick={() => setDeleting(r)} aria-label={`Delete ${r.id}`}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
            {result && !result.items.length && (
              <tr>
                <td colSpan={shown.length + 1}>No records.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {result && (
        <nav className="pager" aria-label="Pages">
          <span>
            {result.totalItems} records, page {result.page} of {Math.max(1, result.totalPages)}
          </span>
          <button type="button" disabled={page <= 1} onClick={() => setPage(page - 1)}>
            Previous
          </button>
          <button type="button" disabled={page >= result.totalPages} onClick={() => setPage(page + 1)}>
            Next
          </button>
        </nav>
      )}
      {editing && (
        <RecordForm
          collection={collection}
          collections={collections}
          record={editing.id ? editing : null}
          onClose={(saved) => {
            setEditing(null);
            if (saved) {
              setStatus(`Saved ${saved.id}.`);
              load();
            }
          }}
        />
      )}
      {deleting && <Confirm title={`Delete record ${deleting.id}?`} text="This cannot be undone." onAnswer={remove} />}
    </div>
  );
}

const SEARCH_DELAY_MS = 200;
const PICKS = 10;

// A record as a person knows it: its presentable (or first text) field and its id.
function recordLabel(c, r) {
  const p = c?.fields.find((f) => f.presentable && f.name !== 'id') || c?.fields.find((f) => f.type === 'text' && f.name !== 'id' && !f.hidden);
  const v = p ? display(r[p.name]) : '';
  return v ? `${v} (${r.id})` : r.id;
}

// The server-side filter matching `q` in the id or any visible text-like field of `c`.
function searchFilter(c, q) {
  if (!q) return '';
  const names = ['id', ...c.fields.filter((f) => !f.hidden && f.name !== 'id' && (f.type === 'text' || f.type === 'email' || f.type === 'url')).map((f) => f.name)];
  return pb.filter(names.map((n) => `${n} ~ {:q}`).join(' || '), { q });
}

/**
 * A relation picker: the chosen records (each removable) and a search box
 * whose text is matched by the server against the related collection.
 */
function RelationInput({ field, value, error, collections, onChange }) {
  const target = collections.find((c) => c.id === field.collectionId);
  const multi = field.maxSelect > 1;
  const ids = Array.isArray(value) ? value : value ? [value] : [];
  const full = multi && ids.length >= field.maxSelect;
  const [known, setKnown] = useState({});
  const [query, setQuery] = useState('');
  const [open, setOpen] = useState(false);
  const [found, setFound] = useState(null);
  const [searchError, setSearchError] = useState('');
  const id = useId('rel');
  const input = useRef(null);
  const list = useRef(null);
  const seq = useRef(0);
  const remember = (items) => setKnown((k) => ({ ...k, ...Object.fromEntries(items.map((r) => [r.id, r])) }));

  // Labels for chosen records not seen yet (a form opened on a saved record).
  const key = ids.join(',');
  useEffect(() => {
    const missing = ids.filter((x) => !known[x]);
    if (!target || !missing.length) return;
    const params = Object.fromEntries(missing.map((x, i) => [`i${i}`, x]));
    const filter = pb.filter(missing.map((_, i) => `id = {:i${i}}`).join(' || '), params);
    pb.collection(target.name)
      .getList(1, missing.length, { filter, skipTotal: true })
      .then((r) => remember(r.items), () => {});
  }, [target?.id, key]);

  useEffect(() => {
    if (!open || !target) return undefined;
    const timer = setTimeout(
      async () => {
        // Only the latest search may fill the list: answers can overtake each other.
        const n = ++seq.current;
        try {
          const r = await pb.collection(target.name).getList(1, PICKS, { filter: searchFilter(target, query.trim()) });
          if (n !== seq.current) return;
          remember(r.items);
          setFound(r);
          setSearchError('');
        } catch (err) {
          if (n === seq.current) setSearchError(errorText(err));
        }
      },
      query ? SEARCH_DELAY_MS : 0,
    );
    return () => clearTimeout(timer);
  }, [open, query, target?.id]);

  const pick = (r) => {
    onChange(multi ? [...ids, r.id] : r.id);
    setQuery('');
    if (!multi || ids.length + 1 >= field.maxSelect) setOpen(false);
    input.current?.focus();
  };
  const remove = (x) => {
    onChange(multi ? ids.filter((y) => y !== x) : '');
    input.current?.focus();
  };
  const moveFocus = (e) => {
    if (e.key === 'Escape' && open) {
      // Closes the list only; the dialog around stays open.
      e.preventDefault();
      e.stopPropagation();
      setOpen(false);
      input.current?.focus();
      return;
    }
    if (e.key === 'ArrowDown' && !open) {
      e.preventDefault();
      setOpen(true);
      return;
    }
    const buttons = [...(list.current?.querySelectorAll('button') || [])];
    const at = buttons.indexOf(document.activeElement);
    let next = null;
    if (e.key === 'ArrowDown') next = buttons[at + 1] || buttons[0];
    else if (e.key === 'ArrowUp') next = at > 0 ? buttons[at - 1] : input.current;
    if (!next) return;
    e.preventDefault();
    next.focus();
  };
  const choices = found ? found.items.filter((r) => !ids.includes(r.id)) : [];
  const targetName = target?.name || 'the related collection';
  return (
    <fieldset
      className="field fieldcard"
      aria-describedby={error ? `${id}-err` : undefined}
      onFocusOut={(e) => {
        if (!e.currentTarget.contains(e.relatedTarget)) setOpen(false);
      }}
    >
      <legend>{field.name}</legend>
      {ids.length ? (
        <ul className="chips" aria-label={`Chosen for ${field.name}`}>
          {ids.map((x) => {
            const label = known[x] ? recordLabel(target, known[x]) : x;
            return (
              <li key={x}>
                {label}
                <button type="button" className="link" aria-label={`Remove ${label}`} onClick={() => remove(x)}>
                  ✕
                </button>
              </li>
            );
          })}
        </ul>
      ) : (
        <p className="hint">None chosen.</p>
      )}
      <label for={id}>{`Search ${targetName}`}</label>
      <input
        id={id}
        ref={input}
        type="search"
        autoComplete="off"
        value={query}
        disabled={full || !target}
        placeholder={full ? `At most ${field.maxSelect}` : 'Type to search, ↓ to pick'}
        aria-controls={`${id}-list`}
        aria-expanded={open ? 'true' : 'false'}
        aria-invalid={error ? 'true' : undefined}
        // Opened by the user's click, typing or ↓, never by focus alone: focus
        // comes back here after each pick.
        onClick={() => setOpen(true)}
        onInput={(e) => {
          setQuery(e.target.value);
          setOpen(true);
        }}
        onKeyDown={moveFocus}
      />
      {open && found && (
        <div className="popup">
          <ul id={`${id}-list`} className="picks" ref={list} aria-label={`Matching records of ${targetName}`} onKeyDown={moveFocus}>
            {choices.map((r) => (
              <li key={r.id}>
                <button type="button" onClick={() => pick(r)}>
                  {recordLabel(target, r)}
                </button>
              </li>
            ))}
          </ul>
          <p className="hint" role="status">
            {found.totalItems > found.items.length ? `${found.items.length} of ${found.totalItems} matches; type to narrow.` : `${choices.length} to pick.`}
          </p>
        </div>
      )}
      {searchError && (
        <p className="err" role="alert">
          {searchError}
        </p>
      )}
      {error && (
        <p className="err" id={`${id}-err`} role="alert">
          {error}
        </p>
      )}
    </fieldset>
  );
}

const IMAGE = /\.(png|jpe?g|gif|webp)$/i;

function size(n) {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KB` : `${n} B`;
}

// A local preview of an image picked for upload; the object URL dies with it.
function Preview({ file }) {
  const [src, setSrc] = useState('');
  useEffect(() => {
    if (!file.type.startsWith('image/')) return undefined;
    const u = URL.createObjectURL(file);
    setSrc(u);
    return () => URL.revokeObjectURL(u);
  }, [file]);
  return src ? <img className="thumb" src={src} alt="" width="48" height="48" onError={() => setSrc('')} /> : null;
}

/**
 * A file field: saved files with thumbnails and download links, and files
 * queued for upload (dropped or chosen), each with its progress bar.
 */
function FileInput({ field, record, value, files, progress, error, onFiles, onRemoveExisting }) {
  const id = useId('file');
  const [over, setOver] = useState(false);
  const [token, setToken] = useState('');
  const multi = field.maxSelect > 1;
  const existing = Array.isArray(value) ? value : value ? [value] : [];
  const add = (list) => onFiles(multi ? [...files, ...list] : list.slice(-1));
  useEffect(() => {
    if (field.protected && record) pb.files.getToken().then(setToken, () => {});
  }, [record?.id]);
  const url = (name, q) => pb.files.getURL(record, name, token ? { ...q, token } : q);
  return (
    <div
      className={`field fieldcard drop${over ? ' over' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={(e) => {
        if (!e.currentTarget.contains(e.relatedTarget)) setOver(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        add([...e.dataTransfer.files]);
      }}
    >
      <label for={id}>{field.name}</label>
      {existing.map((name) => (
        <div className="row" key={name}>
          {IMAGE.test(name) && <img className="thumb" src={url(name, { thumb: '100x100' })} alt="" width="48" height="48" loading="lazy" />}
          <a href={url(name, {})} download={name}>
            {name}
          </a>
          <button type="button" className="link" onClick={() => onRemoveExisting(name)}>
            Remove {name}
          </button>
        </div>
      ))}
      <input
        id={id}
        type="file"
        multiple={multi}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={`${id}-hint`}
        onChange={(e) => {
          add([...e.target.files]);
          // The queue below lists the files; the input may then take the same file again.
          e.target.value = '';
        }}
      />
      <p className="hint" id={`${id}-hint`}>
        {over ? 'Drop to add.' : `Or drop ${multi ? 'files' : 'a file'} here.`}
      </p>
      {files.map((f, i) => (
        <div className="row" key={`${f.name}-${i}`}>
          <Preview file={f} />
          <span>
            {f.name} <span className="hint">{size(f.size)}</span>
          </span>
          <progress max={f.size || 1} value={progress?.get(f) || 0} aria-label={`Upload of ${f.name}`} />
          <button type="button" className="link" onClick={() => onFiles(files.filter((_, j) => j !== i))}>
            Don’t upload {f.name}
          </button>
        </div>
      ))}
      {error && (
        <p className="err" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

function FieldInput({ field, value, error, record, collections, files, progress, onChange, onFiles, onRemoveExisting }) {
  const common = { label: field.name, error, required: field.required && field.type !== 'bool' && field.type !== 'password' };
  switch (field.type) {
    case 'bool':
      return <Field type="checkbox" {...common} checked={!!value} onChange={(e) => onChange(e.target.checked)} />;
    case 'number':
      return <Field {...common} type="number" step="any" value={value ?? ''} onInput={(e) => onChange(e.target.value === '' ? null : Number(e.target.value))} />;
    case 'email':
    case 'url':
      return <Field {...common} type={field.type} value={value ?? ''} onInput={(e) => onChange(e.target.value)} />;
    case 'password':
      return <Field {...common} type="password" autoComplete="new-password" value={value ?? ''} hint={record ? 'Leave empty to keep the current password' : undefined} onInput={(e) => onChange(e.target.value)} />;
    case 'date':
      return <Field {...common} value={value ?? ''} placeholder="2024-01-31 12:00:00.000Z" onInput={(e) => onChange(e.target.value)} />;
    case 'json':
      return <Field {...common} as="textarea" value={value ?? ''} hint="JSON" onInput={(e) => onChange(e.target.value)} />;
    case 'select': {
      const multi = field.maxSelect > 1;
      return (
        <Field
          {...common}
          as="select"
          multiple={multi}
          value={value ?? (multi ? [] : '')}
          onChange={(e) => onChange(multi ? [...e.target.selectedOptions].map((o) => o.value) : e.target.value)}
        >
          {!multi && <option value="">—</option>}
          {(field.values || []).map((v) => (
            <option key={v} value={v} selected={multi ? (value || []).includes(v) : undefined}>
              {v}
            </option>
          ))}
        </Field>
      );
    }
    case 'relation':
      return <RelationInput field={field} value={value} error={error} collections={collections} onChange={onChange} />;
    case 'file':
      return <FileInput field={field} record={record} value={value} files={files} progress={progress} error={error} onFiles={onFiles} onRemoveExisting={onRemoveExisting} />;
    default:
      return <Field {...common} value={value ?? ''} onInput={(e) => onChange(e.target.value)} />;
  }
}

function initialValues(fields, rec) {
  const v = {};
  for (const f of fields) {
    const x = rec?.[f.name];
    if (f.type === 'json') v[f.name] = x === undefined || x === null ? '' : JSON.stringify(x, null, 2);
    else if (f.type === 'password') v[f.name] = '';
    else v[f.name] = x;
  }
  return v;
}

// One comparable line per value: JSON typed in the form and JSON from the
// server compare equal when they hold the same data.
function shownValue(f, v) {
  if (f.type === 'json' && typeof v === 'string' && v.trim()) {
    try {
      return JSON.stringify(JSON.parse(v));
    } catch {
      return v;
    }
  }
  return display(v);
}

/**
 * The two versions of a record after a 412, side by side: the user's (what
 * they changed marked) and the saved one (what the other writer changed
 * marked), both against the version the user started from.
 */
function ConflictView({ fields, conflict, busy, onOverwrite, onKeepSaved }) {
  const shown = fields.filter((f) => f.type !== 'password');
  const base = initialValues(fields, conflict.base);
  const theirs = initialValues(fields, conflict.theirs);
  const lines = (vals, who) =>
    shown.map((f) => {
      const text = `${f.name}: ${shownValue(f, vals[f.name])}\n`;
      return shownValue(f, vals[f.name]) !== shownValue(f, base[f.name]) ? (
        <mark key={f.name} data-changed-by={who}>
          {text}
        </mark>
      ) : (
        <span key={f.name}>{text}</span>
      );
    });
  return (
    <section className="conflict" role="alert" aria-labelledby="conflict-h">
      <h3 id="conflict-h">This record was changed by someone else</h3>
      <p>Your changes were not saved. Marked lines differ from the version you started from. Keep one version:</p>
      <div className="versions">
        <div>
          <h4>Your version</h4>
          <pre data-version="mine">{lines(conflict.mine, 'you')}</pre>
        </div>
        <div>
          <h4>Saved version{conflict.theirs.updated ? ` (${conflict.theirs.updated})` : ''}</h4>
          <pre data-version="theirs">{lines(theirs, 'them')}</pre>
        </div>
      </div>
      <div className="row">
        <button type="button" className="danger" disabled={busy} onClick={onOverwrite}>
          Overwrite with my version
        </button>
        <button type="button" disabled={busy} onClick={onKeepSaved}>
          Keep the saved version
        </button>
      </div>
    </section>
  );
}

const GONE = 'This record was deleted by someone else; your changes were not saved.';

/**
 * The record form in a dialog: `record` null creates. onClose(saved) gets
 * the saved record, or nothing when cancelled.
 */
export function RecordForm({ collection, collections, record, onClose }) {
  const fields = formFields(collection);
  const [current, setCurrent] = useState(record);
  const [values, setValues] = useState(() => initialValues(fields, record));
  const [files, setFiles] = useState({});
  const [removed, setRemoved] = useState({});
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState('');
  const [conflict, setConflict] = useState(null);
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState(null);
  const [loaded, setLoaded] = useState(!record);

  // The list may be stale: edit the version the server has now, and its ETag.
  useEffect(() => {
    if (!record) return;
    pb.collection(collection.name)
      .getOne(record.id)
      .then((r) => {
        setCurrent(r);
        setValues(initialValues(fields, r));
        setLoaded(true);
      })
      .catch((err) => setMessage(errorText(err)));
  }, []);

  const body = () => {
    const out = {};
    const errs = {};
    for (const f of fields) {
      let v = values[f.name];
      if (f.type === 'file') continue;
      if (f.type === 'password') {
        if (!v) continue;
        out.passwordConfirm = v;
      }
      if (f.type === 'json') {
        if (v === '') v = null;
        else {
          try {
            v = JSON.parse(v);
          } catch (e) {
            errs[f.name] = `Not valid JSON: ${e.message}`;
            continue;
          }
        }
      }
      if (v !== undefined) out[f.name] = v;
    }
    const anyFiles = Object.values(files).some((l) => l.length) || Object.values(removed).some((l) => l.length);
    if (!anyFiles) return { out, errs, upload: null };
    // As the SDK sends it: every non-file value in one JSON part, so arrays,
    // nulls and numbers keep their JSON types.
    const fd = new FormData();
    fd.append('@jsonPayload', JSON.stringify(out));
    for (const [k, list] of Object.entries(files)) for (const file of list) fd.append(`${k}+`, file);
    for (const [k, list] of Object.entries(removed)) for (const name of list) fd.append(`${k}-`, name);
    return { out: fd, errs, upload: Object.values(files).flat() };
  };

  // The body goes out in the order the files were appended, so the bytes
  // sent so far tell how far each file is (form fields are a rounding error).
  const track = (upload) => (loaded) => {
    const m = new Map();
    let left = loaded;
    for (const f of upload) {
      m.set(f, Math.max(0, Math.min(f.size, left)));
      left -= f.size;
    }
    setProgress(m);
  };

  const save = async (e, force) => {
    e?.preventDefault();
    const { out, errs, upload } = body();
    if (Object.keys(errs).length) {
      setErrors(errs);
      setMessage('Fix the marked fields.');
      return;
    }
    setBusy(true);
    setMessage('');
    setProgress(null);
    const api = pb.collection(collection.name);
    try {
      let saved;
      const tag = current && (force || etagOf(current.id));
      // Without the version it edits, a save could overwrite a change unseen.
      if (current && !tag) throw new Error('The saved version of this record is unknown: close the form and open it again.');
      const headers = tag ? { 'If-Match': tag } : {};
      const records = `/api/collections/${encodeURIComponent(collection.name)}/records`;
      if (upload) {
        const path = current ? `${records}/${encodeURIComponent(current.id)}` : records;
        saved = await sendForm(current ? 'PATCH' : 'POST', path, out, headers, track(upload));
      } else if (current) {
        saved = await api.update(current.id, out, { headers });
      } else {
        saved = await api.create(out);
      }
      onClose(saved);
    } catch (err) {
      if (err.status === 412 && current) {
        try {
          const theirs = await api.getOne(current.id);
          const mine = { ...values };
          for (const f of fields) {
            if (f.type === 'file' && files[f.name]?.length) mine[f.name] = [].concat(values[f.name] || [], files[f.name].map((x) => `${x.name} (new)`));
          }
          setConflict({ base: current, mine, theirs, tag: etagOf(theirs.id) });
          setMessage('');
        } catch (err2) {
          setMessage(err2.status === 404 ? GONE : errorText(err2));
        }
      } else if (err.status === 404 && current) {
        setMessage(GONE);
      } else {
        setErrors(fieldErrors(err));
        setMessage(errorText(err));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title={current ? `Edit ${collection.name} record ${current.id}` : `New ${collection.name} record`} onClose={() => onClose()}>
      {conflict && (
        <ConflictView
          fields={fields}
          conflict={conflict}
          busy={busy}
          onOverwrite={() => {
            // Deliberate: the new save carries the saved version's ETag, so a
            // third change made meanwhile still stops it with another 412.
            setCurrent(conflict.theirs);
            setConflict(null);
            save(null, conflict.tag);
          }}
          onKeepSaved={() => {
            setCurrent(conflict.theirs);
            setValues(initialValues(fields, conflict.theirs));
            setFiles({});
            setRemoved({});
            setErrors({});
            setConflict(null);
            setMessage('Showing the saved version; your changes were dropped.');
          }}
        />
      )}
      {!loaded && <p className="hint">Loading the saved version…</p>}
      <form onSubmit={save} hidden={!loaded}>
        {fields.map((f) => (
          <FieldInput
            key={f.name}
            field={f}
            value={values[f.name]}
            error={errors[f.name]}
            record={current}
            collections={collections}
            files={files[f.name] || []}
            progress={progress}
            onChange={(v) => setValues((old) => ({ ...old, [f.name]: v }))}
            onFiles={(list) => setFiles((old) => ({ ...old, [f.name]: list }))}
            onRemoveExisting={(name) => {
              setRemoved((old) => ({ ...old, [f.name]: [...(old[f.name] || []), name] }));
              setValues((old) => ({ ...old, [f.name]: [].concat(old[f.name] || []).filter((n) => n !== name) }));
            }}
          />
        ))}
        <div className="row">
          <button className="primary" type="submit" disabled={busy || !!conflict}>
            {current ? 'Save record' : 'Create record'}
          </button>
          <button type="button" onClick={() => onClose()}>
            Cancel
          </button>
          <p role="status" className="err">
            {message}
          </p>
        </div>
      </form>
    </Dialog>
  );
}
