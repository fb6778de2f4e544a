// A tiny JSON client for black-box API tests: every call resolves to
// {status, headers, body} where body is parsed JSON (or null when empty).

export function client(srv, token) {
  async function call(method, path, { body, headers = {}, raw } = {}) {
    const h = { ...headers };
    if (token) h.authorization = token;
    let payload = raw;
    if (body !== undefined) {
      h['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await fetch(`${srv.url}${path}`, { method, headers: h, body: payload });
    const text = await res.text();
    let parsed = null;
    if (text.length) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: res.status, headers: res.headers, body: parsed };
  }
  return {
    token,
    get: (p, o) => call('GET', p, o),
    post: (p, body, o = {}) => call('POST', p, { ...o, body }),
    patch: (p, body, o = {}) => call('PATCH', p, { ...o, body }),
    del: (p, o) => call('DELETE', p, o),
    call,
  };
}
