// The console's API client: the PocketBase JS SDK on the page's own origin,
// plus the record ETags the SDK does not surface (needed for If-Match).
import PocketBase from 'pocketbase';

export const pb = new PocketBase(location.origin);

// Two tabs editing at once must each see their own 412, so nothing is
// auto-cancelled behind the user's back.
pb.autoCancellation(false);

const etags = new Map();

pb.afterSend = (response, data) => {
  const tag = response.headers.get('etag');
  if (tag && data && typeof data === 'object' && typeof data.id === 'string') {
    etags.set(data.id, tag);
  }
  return data;
};

/** The ETag of the last answer that carried record `id`, or undefined. */
export function etagOf(id) {
  return etags.get(id);
}

/** The message of an SDK error (or any error) for display. */
export function errorText(err) {
  return err?.response?.message || err?.message || String(err);
}

/**
 * Field errors of an SDK error as a flat map: `data.fields.0.name` becomes
 * "fields.0.name" -> message. Empty when the server named no field.
 */
export function fieldErrors(err) {
  const out = {};
  const walk = (obj, prefix) => {
    if (!obj || typeof obj !== 'object') return;
    if (typeof obj.message === 'string' && typeof obj.code === 'string') {
      out[prefix] = obj.message;
      return;
    }
    for (const [k, v] of Object.entries(obj)) walk(v, prefix ? `${prefix}.${k}` : k);
  };
  walk(err?.response?.data, '');
  return out;
}

/**
 * Sends `form` (FormData) to the API path with XMLHttpRequest, because fetch
 * reports no upload progress: onProgress(loaded, total) is called as the body
 * goes out. Resolves to the parsed answer (its ETag remembered like the
 * SDK's); rejects with an error shaped like the SDK's ({status, response}).
 */
export function sendForm(method, path, form, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, pb.buildURL(path));
    if (pb.authStore.token) xhr.setRequestHeader('Authorization', pb.authStore.token);
    for (const [k, v] of Object.entries(headers || {})) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total);
    xhr.onerror = () => reject(Object.assign(new Error('Network error.'), { status: 0, response: {} }));
    xhr.onload = () => {
      let data = {};
      try {
        data = JSON.parse(xhr.responseText || '{}');
      } catch {
        // a non-JSON answer keeps the empty body; the status still tells
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        const tag = xhr.getResponseHeader('etag');
        if (tag && typeof data.id === 'string') etags.set(data.id, tag);
        resolve(data);
      } else {
        reject(Object.assign(new Error(data.message || `HTTP ${xhr.status}`), { status: xhr.status, response: data }));
      }
    };
    xhr.send(form);
  });
}
