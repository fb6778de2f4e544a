// Small building blocks shared by the views: labelled controls with their
// error text wired through aria-describedby, a modal dialog, hash routing.
import { useEffect, useRef, useState } from 'preact/hooks';

let nextId = 0;
/** A stable id for one component instance (label/for, aria links). */
export function useId(prefix = 'c') {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}${++nextId}`;
  return ref.current;
}

/** The part of location.hash after "#/", re-rendering on change. */
export function useRoute() {
  const read = () => decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function go(route) {
  location.hash = `#/${route}`;
}

/**
 * A labelled control. `as` picks input (default), select or textarea; the
 * error, if any, is announced and tied to the control.
 */
export function Field({ label, error, hint, as = 'input', children, className, inputRef, ...props }) {
  const id = useId('f');
  const Tag = as;
  const described = [error && `${id}-err`, hint && `${id}-hint`].filter(Boolean).join(' ');
  const control = (
    <Tag
      id={id}
      ref={inputRef}
      aria-invalid={error ? 'true' : undefined}
      aria-describedby={described || undefined}
      {...props}
    >
      {children}
    </Tag>
  );
  if (props.type === 'checkbox') {
    return (
      <div className={`field ${className || ''}`}>
        <label className="inline" for={id}>
          {control} {label}
        </label>
        {error && (
          <p className="err" id={`${id}-err`} role="alert">
            {error}
          </p>
        )}
      </div>
    );
  }
  return (
    <div className={`field ${className || ''}`}>
      <label for={id}>{label}</label>
      {control}
      {hint && (
        <p className="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {error && (
        <p className="err" id={`${id}-err`} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** A modal dialog, open while mounted; Escape or the close button call onClose. */
export function Dialog({ title, onClose, children }) {
  const ref = useRef(null);
  const id = useId('d');
  useEffect(() => {
    const d = ref.current;
    d.showModal();
    // showModal focuses the close button, the first control; typing starts in the first field.
    if (!d.querySelector('[autofocus]')) d.querySelector('input:not([type=hidden]), select, textarea')?.focus();
    return () => d.open && d.close();
  }, []);
  return (
    <dialog
      ref={ref}
      aria-labelledby={id}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <div className="row">
        <h2 id={id} className="grow">
          {title}
        </h2>
        <button type="button" className="link" onClick={onClose} aria-label="Close">
          ✕
        </button>
      </div>
      {children}
    </dialog>
  );
}

/** Asks before a destructive action: resolves the choice through onAnswer(bool). */
export function Confirm({ title, text, action = 'Delete', onAnswer }) {
  return (
    <Dialog title={title} onClose={() => onAnswer(false)}>
      <p>{text}</p>
      <div className="row">
        <button type="button" className="danger" onClick={() => onAnswer(true)}>
          {action}
        </button>
        <button type="button" onClick={() => onAnswer(false)} autoFocus>
          Cancel
        </button>
      </div>
    </Dialog>
  );
}
