// Records of one collection: a server-paginated table sorted by its headers,
// filtered with the server's filter language, with a choice of columns; a
// form generated from the schema whose saves send If-Match, so a record
// changed meanwhile by someone else shows both versions (412) instead of
// being overwritten.
import { useEffect, useState } from 'preact/hooks';
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

  const load = async () => {
    try {
      const r = await pb.collection(collection.name).getList(page, PER_PAGE, { sort, filter, skipTotal: false });
      setResult(r);
      setListError('');
    } catch (err) {
      setListError(errorText(err));
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
                  <td key={f.name} title={display(r[f.name])}>
                    {display(r[f.name])}
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

function RelationInput({ field, value, error, collections, onChange }) {
  const target = collections.find((c) => c.id === field.collectionId);
  const [options, setOptions] = useState([]);
  const listId = useId('rel');
  const label = (r) => {
    const p = target?.fields.find((f) => f.presentable && f.name !== 'id');
    return p ? `${r.id} (${display(r[p.name])})` : r.id;
  };
  const search = async (q) => {
    if (!target) return;
    try {
      const filter = q ? pb.filter('id ~ {:q}', { q }) : '';
      const r = await pb.collection(target.name).getList(1, 10, { filter });
      setOptions(r.items);
    } catch {
      setOptions([]);
    }
  };
  const text = Array.isArray(value) ? value.join(', ') : value || '';
  return (
    <>
      <Field
        label={field.name}
        hint={`Record id${field.maxSelect > 1 ? 's, comma-separated' : ''} in ${target?.name || 'the related collection'}`}
        value={text}
        error={error}
        list={listId}
        autoComplete="off"
        onFocus={() => search('')}
        onInput={(e) => {
          const v = e.target.value;
          const ids = v.split(',').map((s) => s.trim());
          search(ids[ids.length - 1]);
          onChange(field.maxSelect > 1 ? ids.filter(Boolean) : v.trim());
        }}
      />
      <datalist id={listId}>
        {options.map((r) => (
          <option key={r.id} value={r.id}>
            {label(r)}
          </option>
        ))}
      </datalist>
    </>
  );
}

const IMAGE = /\.(png|jpe?g|gif|webp)$/i;

function FileInput({ field, record, value, files, progress, error, onFiles, onRemoveExisting }) {
  const id = useId('file');
  const existing = Array.isArray(value) ? value : value ? [value] : [];
  return (
    <div
      className="field fieldcard"
      onDragOver={(e) => e.preventDefault()}
      onDrop={(e) => {
        e.preventDefault();
        onFiles([...files, ...e.dataTransfer.files]);
      }}
    >
      <label for={id}>{field.name}</label>
      {existing.map((name) => (
        <div className="row" key={name}>
          {IMAGE.test(name) && <img src={pb.files.getURL(record, name, { thumb: '100x100' })} alt="" width="48" height="48" loading="lazy" />}
          <a href={pb.files.getURL(record, name)} target="_blank" rel="noopener" download>
            {name}
          </a>
          <button type="button" className="link" onClick={() => onRemoveExisting(name)}>
            Remove {name}
          </button>
        </div>
      ))}
      <input id={id} type="file" multiple={field.maxSelect > 1} aria-invalid={error ? 'true' : undefined} onChange={(e) => onFiles([...e.target.files])} />
      <p className="hint">Or drop files here.</p>
      {files.map((f, i) => (
        <div className="row" key={`${f.name}-${i}`}>
          <span>{f.name}</span>
          <progress max={f.size || 1} value={progress?.get(f) || 0} aria-label={`Upload of ${f.name}`} />
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

// Fields whose saved value differs between the two versions, for the conflict view.
function differing(fields, a, b) {
  return new Set(fields.filter((f) => display(a?.[f.name]) !== display(b?.[f.name])).map((f) => f.name));
}

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
    const fd = new FormData();
    for (const [k, v] of Object.entries(out)) fd.append(k, v !== null && typeof v === 'object' ? JSON.stringify(v) : v ?? '');
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
    const api = pb.collection(collection.name);
    try {
      let saved;
      const tag = current && (force || etagOf(current.id));
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
          setConflict({ mine: values, theirs });
          setMessage('');
        } catch (err2) {
          setMessage(errorText(err2));
        }
      } else {
        setErrors(fieldErrors(err));
        setMessage(errorText(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const changed = conflict ? differing(fields, conflict.theirs, current) : null;
  return (
    <Dialog title={current ? `Edit ${collection.name} record ${current.id}` : `New ${collection.name} record`} onClose={() => onClose()}>
      {conflict && (
        <section className="conflict" role="alert" aria-labelledby="conflict-h">
          <h3 id="conflict-h">This record was changed by someone else</h3>
          <p>Your changes were not saved. Compare both versions, then keep one.</p>
          <div className="versions">
            <div>
              <h4>Your version</h4>
              <pre data-version="mine">
                {fields.filter((f) => f.type !== 'password').map((f) => `${f.name}: ${display(conflict.mine[f.name])}\n`)}
              </pre>
            </div>
            <div>
              <h4>Saved version</h4>
              <pre data-version="theirs">
                {fields
                  .filter((f) => f.type !== 'password')
                  .map((f) => (
                    <span key={f.name} className={changed.has(f.name) ? 'changed' : undefined}>
                      {`${f.name}: ${display(conflict.theirs[f.name])}\n`}
                    </span>
                  ))}
              </pre>
            </div>
          </div>
          <div className="row">
            <button
              type="button"
              className="danger"
              onClick={() => {
                setCurrent(conflict.theirs);
                setConflict(null);
                save(null, etagOf(conflict.theirs.id));
              }}
            >
              Overwrite with my version
            </button>
            <button
              type="button"
              onClick={() => {
                setCurrent(conflict.theirs);
                setValues(initialValues(fields, conflict.theirs));
                setConflict(null);
              }}
            >
              Use the saved version
            </button>
          </div>
        </section>
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
