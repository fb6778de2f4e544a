// The collection editor: name and type, a field editor with each field
// type's own options, the indexes and the API rules. Validation is the
// server's: its field errors are shown next to the control they name.
import { useEffect, useState } from 'preact/hooks';
import { pb, errorText, fieldErrors } from './api.js';
import { Confirm, Field, go } from './ui.jsx';

// Option name, kind (int, num, str, bool, list, collection) and label, per field type.
export const FIELD_OPTIONS = {
  text: [['min', 'int', 'Min length'], ['max', 'int', 'Max length'], ['pattern', 'str', 'Pattern (regex)']],
  number: [['min', 'num', 'Min'], ['max', 'num', 'Max'], ['onlyInt', 'bool', 'Integers only']],
  bool: [],
  email: [['onlyDomains', 'list', 'Only domains'], ['exceptDomains', 'list', 'Except domains']],
  url: [['onlyDomains', 'list', 'Only domains'], ['exceptDomains', 'list', 'Except domains']],
  date: [['min', 'str', 'Min date'], ['max', 'str', 'Max date']],
  select: [['values', 'list', 'Values'], ['maxSelect', 'int', 'Max selected']],
  json: [['maxSize', 'int', 'Max size (bytes)']],
  autodate: [['onCreate', 'bool', 'Set on create'], ['onUpdate', 'bool', 'Set on update']],
  password: [['min', 'int', 'Min length'], ['max', 'int', 'Max length'], ['pattern', 'str', 'Pattern (regex)']],
  relation: [
    ['collectionId', 'collection', 'Related collection'],
    ['cascadeDelete', 'bool', 'Cascade delete'],
    ['minSelect', 'int', 'Min selected'],
    ['maxSelect', 'int', 'Max selected'],
  ],
  file: [
    ['maxSelect', 'int', 'Max files'],
    ['maxSize', 'int', 'Max size (bytes)'],
    ['mimeTypes', 'list', 'MIME types'],
    ['thumbs', 'list', 'Thumb sizes'],
    ['protected', 'bool', 'Protected'],
  ],
};

const RULES = [
  ['listRule', 'List/search rule'],
  ['viewRule', 'View rule'],
  ['createRule', 'Create rule'],
  ['updateRule', 'Update rule'],
  ['deleteRule', 'Delete rule'],
];
const AUTH_RULES = [
  ['authRule', 'Auth rule'],
  ['manageRule', 'Manage rule'],
];

let fieldKey = 0;
const keyed = (f) => ({ ...f, _k: ++fieldKey });

function newField(type) {
  const f = { name: '', type, required: false, hidden: false, presentable: false };
  if (type === 'autodate') Object.assign(f, { onCreate: true, onUpdate: false });
  if (type === 'select' || type === 'relation' || type === 'file') f.maxSelect = 1;
  return keyed(f);
}

function draftOf(c) {
  if (!c) {
    return {
      name: '',
      type: 'base',
      fields: [newField('text')],
      indexes: [],
      listRule: null,
      viewRule: null,
      createRule: null,
      updateRule: null,
      deleteRule: null,
    };
  }
  const d = structuredClone(c);
  d.fields = (d.fields || []).map(keyed);
  d.indexes = d.indexes || [];
  return d;
}

function toPayload(d, creating) {
  const out = {
    name: d.name,
    fields: d.fields.map(({ _k, ...f }) => f),
    indexes: d.indexes.filter((s) => s.trim()),
  };
  if (creating) out.type = d.type;
  for (const [k] of [...RULES, ...(d.type === 'auth' ? AUTH_RULES : [])]) {
    if (k in d) out[k] = d[k];
  }
  return out;
}

// Keeps the text as typed ("a, " would not survive a round trip through the array).
function ListInput({ label, value, error, onChange }) {
  const [text, setText] = useState(() => (value || []).join(', '));
  return (
    <Field
      label={label}
      hint="Comma-separated"
      value={text}
      error={error}
      onInput={(e) => {
        setText(e.target.value);
        onChange(
          e.target.value
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean),
        );
      }}
    />
  );
}

function OptionInput({ kind, label, value, error, onChange, collections }) {
  if (kind === 'bool') {
    return <Field type="checkbox" label={label} checked={!!value} error={error} onChange={(e) => onChange(e.target.checked)} />;
  }
  if (kind === 'collection') {
    return (
      <Field as="select" label={label} value={value || ''} error={error} onChange={(e) => onChange(e.target.value)}>
        <option value="">— choose —</option>
        {collections.map((c) => (
          <option key={c.id} value={c.id}>
            {c.name}
          </option>
        ))}
      </Field>
    );
  }
  if (kind === 'list') {
    return <ListInput label={label} value={value} error={error} onChange={onChange} />;
  }
  const numeric = kind === 'int' || kind === 'num';
  return (
    <Field
      label={label}
      type={numeric ? 'number' : 'text'}
      step={kind === 'num' ? 'any' : undefined}
      value={value ?? ''}
      error={error}
      onInput={(e) => {
        const v = e.target.value;
        if (kind === 'int') onChange(v === '' ? 0 : parseInt(v, 10));
        else if (kind === 'num') onChange(v === '' ? null : Number(v));
        else onChange(v);
      }}
    />
  );
}

function FieldCard({ field, index, errors, authType, collections, onChange, onRemove }) {
  const err = (k) => errors[`fields.${index}.${k}`];
  const set = (k, v) => onChange({ ...field, [k]: v });
  const types = Object.keys(FIELD_OPTIONS).filter((t) => t !== 'password' || authType || field.type === 'password');
  return (
    <fieldset className="fieldcard">
      <legend className="sr">Field {field.name || index + 1}</legend>
      <div className="grid">
        <Field label="Field name" value={field.name} error={err('name')} disabled={field.system} required onInput={(e) => set('name', e.target.value)} />
        <Field
          as="select"
          label="Type"
          value={field.type}
          error={err('type')}
          disabled={field.system}
          onChange={(e) => onChange({ ...newField(e.target.value), name: field.name, id: field.id, _k: field._k })}
        >
          {types.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </Field>
        {field.type !== 'autodate' && <Field type="checkbox" label="Required" checked={!!field.required} error={err('required')} onChange={(e) => set('required', e.target.checked)} />}
        <Field type="checkbox" label="Hidden" checked={!!field.hidden} error={err('hidden')} onChange={(e) => set('hidden', e.target.checked)} />
        <Field type="checkbox" label="Presentable" checked={!!field.presentable} onChange={(e) => set('presentable', e.target.checked)} />
        {FIELD_OPTIONS[field.type]?.map(([k, kind, label]) => (
          <OptionInput key={k} kind={kind} label={label} value={field[k]} error={err(k)} collections={collections} onChange={(v) => set(k, v)} />
        ))}
      </div>
      {err('') && <p className="err">{err('')}</p>}
      {!field.system && (
        <button type="button" className="link" onClick={onRemove}>
          Remove field {field.name}
        </button>
      )}
    </fieldset>
  );
}

const CHECK_DELAY_MS = 300;

/** The character index of byte offset `pos` (UTF-8) in `text`. */
function charAt(text, pos) {
  return new TextDecoder().decode(new TextEncoder().encode(text).slice(0, pos)).length;
}

/**
 * Checks `rule` against the draft collection with the server's own rule
 * compiler as the user types (debounced): the syntax error with its
 * character position, or '' while the rule compiles (or is not checked).
 * An edited collection is named by id, so a rename in progress still finds
 * its saved fields; draft fields the server cannot read yet are left to the
 * save to report.
 */
function useRuleCheck(rule, kind, draft) {
  const [error, setError] = useState('');
  const fields = JSON.stringify(draft.fields);
  useEffect(() => {
    setError('');
    if (!rule) return undefined;
    let live = true;
    const timer = setTimeout(async () => {
      try {
        await pb.send('/api/cruder/check-rule', {
          method: 'POST',
          body: { collection: draft.id || draft.name, type: draft.type, fields: JSON.parse(fields), rule, kind },
        });
      } catch (err) {
        const r = err?.response?.data?.rule;
        if (!live) return;
        if (r && typeof r.position === 'number') {
          const at = charAt(rule, r.position);
          setError(`${r.message} (at character ${at + 1}: “${rule.slice(at, at + 12) || 'end of rule'}”)`);
        }
      }
    }, CHECK_DELAY_MS);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [rule, kind, draft.id, draft.name, draft.type, fields]);
  return error;
}

function RuleInput({ name, label, value, error, draft, onChange }) {
  const locked = value === null || value === undefined;
  const checked = useRuleCheck(locked ? '' : value, name.replace(/Rule$/, ''), draft);
  return (
    <div className="fieldcard">
      <Field
        type="checkbox"
        label={`${label}: superusers only`}
        checked={locked}
        onChange={(e) => onChange(e.target.checked ? null : '')}
      />
      {!locked && (
        <Field
          as="textarea"
          label={label}
          value={value}
          error={error || checked}
          hint="Empty: anyone. Otherwise a filter expression, e.g. @request.auth.id != ''"
          onInput={(e) => onChange(e.target.value)}
        />
      )}
      {locked && error && <p className="err">{error}</p>}
    </div>
  );
}

/**
 * Creates (no `collection`) or edits a collection; calls onSaved() after a
 * save or delete so the sidebar reloads.
 */
export function CollectionEditor({ collection, collections, onSaved }) {
  const creating = !collection;
  const [d, setD] = useState(() => draftOf(collection));
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);
  const [asking, setAsking] = useState(false);
  const [addType, setAddType] = useState('text');
  const set = (k, v) => setD((old) => ({ ...old, [k]: v }));

  const save = async (e) => {
    e.preventDefault();
    setBusy(true);
    setMessage('');
    try {
      const body = toPayload(d, creating);
      const saved = creating ? await pb.collections.create(body) : await pb.collections.update(collection.id, body);
      setErrors({});
      await onSaved();
      go(`c/${encodeURIComponent(saved.name)}${creating ? '' : '/settings'}`);
      setMessage('Saved.');
    } catch (err) {
      const errs = fieldErrors(err);
      setErrors(errs);
      const details = Object.entries(errs).map(([k, v]) => `${k}: ${v}`);
      setMessage([errorText(err), ...details].join(' '));
    } finally {
      setBusy(false);
    }
  };

  const remove = async (yes) => {
    setAsking(false);
    if (!yes) return;
    try {
      await pb.collections.delete(collection.id);
      await onSaved();
      go('');
    } catch (err) {
      setMessage(errorText(err));
    }
  };

  const others = collections.filter((c) => c.id !== collection?.id);
  return (
    <form onSubmit={save} aria-labelledby="coll-title">
      {!creating && <Tabs name={collection.name} active="settings" />}
      <div className="panel">
        <h2 id="coll-title">{creating ? 'New collection' : `Settings of ${collection.name}`}</h2>
        <div className="grid">
          <Field label="Collection name" value={d.name} error={errors.name} required onInput={(e) => set('name', e.target.value)} />
          <Field as="select" label="Collection type" value={d.type} disabled={!creating} error={errors.type} onChange={(e) => set('type', e.target.value)}>
            <option value="base">base</option>
            <option value="auth">auth</option>
          </Field>
        </div>
      </div>
      <section className="panel" aria-labelledby="fields-h">
        <h3 id="fields-h">Fields</h3>
        {errors.fields && <p className="err">{errors.fields}</p>}
        {d.fields.map((f, i) => (
          <FieldCard
            key={f._k}
            field={f}
            index={i}
            errors={errors}
            authType={d.type === 'auth'}
            collections={[...others, ...(collection ? [collection] : [])]}
            onChange={(nf) => set('fields', d.fields.map((x, j) => (j === i ? nf : x)))}
            onRemove={() => set('fields', d.fields.filter((_, j) => j !== i))}
          />
        ))}
        <div className="row">
          <Field as="select" label="New field type" value={addType} onChange={(e) => setAddType(e.target.value)}>
            {Object.keys(FIELD_OPTIONS)
              .filter((t) => t !== 'password' || d.type === 'auth')
              .map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
          </Field>
          <button type="button" onClick={() => set('fields', [...d.fields, newField(addType)])}>
            Add field
          </button>
        </div>
      </section>
      <section className="panel" aria-labelledby="idx-h">
        <h3 id="idx-h">Indexes</h3>
        {d.indexes.map((s, i) => (
          <div className="row" key={i}>
            <Field
              className="grow"
              label={`Index ${i + 1}`}
              value={s}
              error={errors[`indexes.${i}`]}
              placeholder={`CREATE INDEX idx_${d.name || 'name'}_field ON ${d.name || 'name'} (field)`}
              onInput={(e) => set('indexes', d.indexes.map((x, j) => (j === i ? e.target.value : x)))}
            />
            <button type="button" className="link" onClick={() => set('indexes', d.indexes.filter((_, j) => j !== i))}>
              Remove index {i + 1}
            </button>
          </div>
        ))}
        {errors.indexes && <p className="err">{errors.indexes}</p>}
        <button type="button" onClick={() => set('indexes', [...d.indexes, ''])}>
          Add index
        </button>
      </section>
      <section className="panel" aria-labelledby="rules-h">
        <h3 id="rules-h">API rules</h3>
        {[...RULES, ...(d.type === 'auth' ? AUTH_RULES : [])].map(([k, label]) => (
          <RuleInput
            key={k}
            name={k}
            label={label}
            value={d[k]}
            error={errors[k]}
            draft={{ ...toPayload(d, true), id: collection?.id }}
            onChange={(v) => set(k, v)}
          />
        ))}
      </section>
      <div className="row">
        <button className="primary" type="submit" disabled={busy}>
          {creating ? 'Create collection' : 'Save changes'}
        </button>
        {!creating && (
          <button type="button" className="danger" onClick={() => setAsking(true)}>
            Delete collection
          </button>
        )}
        <p role="status" className={Object.keys(errors).length ? 'err' : 'hint'}>
          {message}
        </p>
      </div>
      {asking && (
        <Confirm
          title={`Delete ${collection.name}?`}
          text="The collection and every record in it are deleted. This cannot be undone."
          onAnswer={remove}
        />
      )}
    </form>
  );
}

/** The Records / Settings tabs of one collection. */
export function Tabs({ name, active }) {
  const base = `#/c/${encodeURIComponent(name)}`;
  return (
    <nav className="tabs" aria-label={`Collection ${name}`}>
      <a href={base} aria-current={active === 'records' ? 'page' : undefined}>
        Records
      </a>
      <a href={`${base}/settings`} aria-current={active === 'settings' ? 'page' : undefined}>
        Settings
      </a>
    </nav>
  );
}
