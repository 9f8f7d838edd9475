import cf from 'cloudfront';

// slipway edge router: CloudFront Function, cloudfront-js-2.0, viewer-request.
// The KVS maps a host name to `{site}/{deployment}`, then optionally `;` and flags:
// `s` SPA fallback, `c` clean URLs (written by functions/core/src/site/edge.rs).
// `slipway dev` (QuickJS) and tests/edge (Node) run this very file: keep to the
// features cloudfront-js-2.0 documents.
const kvs = cf.kvs();

// Checked on the decoded path: dot and empty segments, backslash, NUL, and
// percent escapes that survive one decode (double encoding of . / \ NUL).
const BAD = /(^|\/)\.\.?(\/|$)|\/\/|[\\\x00]|%(2e|2f|5c|00)/i;

const reply = (code, text, detail) => ({
  statusCode: code,
  statusDescription: text,
  headers: {
    'content-type': { value: 'text/html; charset=utf-8' },
    'cache-control': { value: 'no-store' },
  },
  body: {
    encoding: 'text',
    data: `<!doctype html><title>${code} ${text}</title><h1>${code} ${text}</h1><p>${detail}</p>`,
  },
});

async function handler(event) {
  const request = event.request;
  const uri = request.uri;
  let path;
  try {
    path = decodeURIComponent(uri);
  } catch (e) {
    return reply(400, 'Bad Request', 'The path is not valid percent-encoding.');
  }
  if (path.charAt(0) !== '/' || BAD.test(path)) {
    return reply(400, 'Bad Request', 'The path is not allowed.');
  }

  const host = request.headers.host;
  let route;
  try {
    // Rejects when the key is missing: an unknown host.
    route = await kvs.get(host ? host.value.toLowerCase().replace(/:\d+$/, '') : '');
  } catch (e) {
    return reply(404, 'Not Found', 'No site is published at this host name.');
  }

  const cut = route.indexOf(';');
  const flags = cut < 0 ? '' : route.slice(cut + 1);
  // Decide on the decoded path, append to the raw one: the origin decodes it once.
  // SPA: every path without an extension is a client route, trailing slash or not.
  // /.well-known/ names have no extension by convention and are served as published.
  let tail = uri;
  const wellKnown = path.indexOf('/.well-known/') === 0;
  if (!wellKnown && path.slice(path.lastIndexOf('/') + 1).indexOf('.') < 0) {
    if (flags.indexOf('s') >= 0) {
      tail = '/index.html';
    } else if (path.slice(-1) === '/') {
      tail += 'index.html';
    } else {
      tail += flags.indexOf('c') >= 0 ? '.html' : '/index.html';
    }
  }
  request.uri = `/${cut < 0 ? route : route.slice(0, cut)}${tail}`;
  return request;
}
