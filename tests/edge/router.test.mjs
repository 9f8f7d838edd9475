import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';

import { IMPORT_LINE, ROUTER_PATH, loadRouter, viewerRequest } from './load-router.mjs';

const ID = '01jd0000000000000000000000';
const ROUTES = {
  'docs.example.com': `docs/${ID}`,
  'clean.example.com': `clean/${ID};c`,
  'app.example.com': `app/${ID};s`,
  'both.example.com': `both/${ID};sc`,
};

// Routes one request and checks it cost exactly one lookup, of `expectedKey`.
async function route(host, uri, expectedKey = host, querystring = {}) {
  const router = loadRouter(ROUTES);
  const result = await router.run(viewerRequest(host, uri, querystring));
  assert.deepEqual(router.keys, [expectedKey], `lookups for ${host} ${uri}`);
  return result;
}

async function rewritten(host, uri) {
  const result = await route(host, uri);
  assert.equal(result.statusCode, undefined, `${uri} got a response, not a request`);
  return result.uri;
}

describe('router.js as CloudFront sees it', () => {
  const source = readFileSync(ROUTER_PATH, 'utf8');

  it('stays under 3 KB', () => {
    assert.ok(statSync(ROUTER_PATH).size < 3072, `router.js is ${statSync(ROUTER_PATH).size} bytes`);
  });

  it('imports the cloudfront module first and exports nothing', () => {
    assert.equal(source.split('\n')[0], IMPORT_LINE);
    assert.match(source, /^async function handler\(event\) \{$/m);
    assert.doesNotMatch(source, /\bexport\b/);
  });

  it('refuses to load a source without the cloudfront import line', () => {
    assert.throws(() => loadRouter(ROUTES, source.replace(IMPORT_LINE, '')), /no line/);
  });
});

describe('host lookup', () => {
  it('answers an unknown host with its own 404 page', async () => {
    const result = await route('nope.example.com', '/index.html');
    assert.equal(result.statusCode, 404);
    assert.equal(result.headers['cache-control'].value, 'no-store');
    assert.match(result.headers['content-type'].value, /^text\/html/);
    assert.equal(result.body.encoding, 'text');
    assert.match(result.body.data, /404 Not Found/);
  });

  it('answers a request without a Host header with a 404', async () => {
    const result = await route(undefined, '/', '');
    assert.equal(result.statusCode, 404);
  });

  it('lowercases the host and strips the port', async () => {
    const result = await route('Docs.Example.COM:8443', '/a.css', 'docs.example.com');
    assert.equal(result.uri, `/docs/${ID}/a.css`);
  });

  it('keeps an IPv6 literal intact apart from its port', async () => {
    const router = loadRouter({});
    await router.run(viewerRequest('[::1]:3000', '/'));
    assert.deepEqual(router.keys, ['[::1]']);
  });

  it('serves the new version as soon as the key changes', async () => {
    const router = loadRouter(ROUTES);
    const before = await router.run(viewerRequest('docs.example.com', '/a.js'));
    router.set('docs.example.com', 'docs/01je0000000000000000000000');
    const after = await router.run(viewerRequest('docs.example.com', '/a.js'));
    assert.equal(before.uri, `/docs/${ID}/a.js`);
    assert.equal(after.uri, '/docs/01je0000000000000000000000/a.js');
    assert.equal(router.keys.length, 2);
  });
});

describe('rewrites', () => {
  const cases = [
    // [host, request uri, rewritten uri]
    ['docs.example.com', '/', `/docs/${ID}/index.html`],
    ['docs.example.com', '/guide/', `/docs/${ID}/guide/index.html`],
    ['docs.example.com', '/guide/intro', `/docs/${ID}/guide/intro/index.html`],
    ['docs.example.com', '/style.css', `/docs/${ID}/style.css`],
    ['docs.example.com', '/a/b/page.html', `/docs/${ID}/a/b/page.html`],
    ['docs.example.com', '/hello%20world.html', `/docs/${ID}/hello%20world.html`],
    ['docs.example.com', '/.well-known/security.txt', `/docs/${ID}/.well-known/security.txt`],
    ['docs.example.com', '/a..b.txt', `/docs/${ID}/a..b.txt`],
    ['clean.example.com', '/about', `/clean/${ID}/about.html`],
    ['clean.example.com', '/blog/post-1', `/clean/${ID}/blog/post-1.html`],
    ['clean.example.com', '/blog/', `/clean/${ID}/blog/index.html`],
    ['clean.example.com', '/', `/clean/${ID}/index.html`],
    ['clean.example.com', '/logo.svg', `/clean/${ID}/logo.svg`],
    ['app.example.com', '/', `/app/${ID}/index.html`],
    ['app.example.com', '/dashboard', `/app/${ID}/index.html`],
    ['app.example.com', '/users/42/settings', `/app/${ID}/index.html`],
    ['app.example.com', '/assets/index-3f9a.js', `/app/${ID}/assets/index-3f9a.js`],
    ['app.example.com', '/favicon.ico', `/app/${ID}/favicon.ico`],
    ['app.example.com', '/docs/', `/app/${ID}/index.html`],
    ['app.example.com', '/users/42/', `/app/${ID}/index.html`],
    ['app.example.com', '/.well-known/assetlinks.json', `/app/${ID}/.well-known/assetlinks.json`],
    ['docs.example.com', '/.well-known/apple-app-site-association', `/docs/${ID}/.well-known/apple-app-site-association`],
    ['clean.example.com', '/.well-known/webfinger', `/clean/${ID}/.well-known/webfinger`],
    ['both.example.com', '/pricing', `/both/${ID}/index.html`],
    ['both.example.com', '/robots.txt', `/both/${ID}/robots.txt`],
  ];
  for (const [host, uri, expected] of cases) {
    it(`${host} ${uri} → ${expected}`, async () => {
      assert.equal(await rewritten(host, uri), expected);
    });
  }

  it('decides on the decoded path: an encoded slash still ends a directory', async () => {
    assert.equal(await rewritten('docs.example.com', '/guide%2F'), `/docs/${ID}/guide%2Findex.html`);
  });

  it('leaves the querystring, headers and method untouched', async () => {
    const querystring = { q: { value: 'a b' }, page: { value: '2', multiValue: [{ value: '2' }, { value: '3' }] } };
    const result = await route('app.example.com', '/search', 'app.example.com', querystring);
    assert.equal(result.uri, `/app/${ID}/index.html`);
    assert.deepEqual(result.querystring, querystring);
    assert.deepEqual(result.headers, { host: { value: 'app.example.com' } });
    assert.equal(result.method, 'GET');
  });
});

describe('rejects', () => {
  const tricks = [
    '/..',
    '/../etc/passwd',
    '/a/../../b',
    '/a/..',
    '/.',
    '/./a',
    '/a/./b',
    '/%2e%2e/x',
    '/%2E%2E/x',
    '/%2e%2E/x',
    '/.%2e/x',
    '/.%2E/x',
    '/%2e./x',
    '/%2E./x',
    '/a/%2e%2e',
    '/a/%2e',
    '/a%2f..%2fb',
    '/a%2F%2E%2E%2Fb',
    '/%252e%252e/x',
    '/%252E%252E/x',
    '/a\\b',
    '/a\\..\\b',
    '/a%5cb',
    '/a%5Cb',
    '/a%5c..%5cb',
    '/a%255cb',
    '/%00',
    '/a%00.html',
    '/index.html%00.js',
    '/a%2500',
    '/a\u0000b',
    '//',
    '//etc/passwd',
    '/a//b',
    '/a/%2f/b',
    '/a%2f%2fb',
    '/a%2F%2Fb',
    '/a%252fb',
    '/%',
    '/a%2',
    '/%zz',
    '/%c0%ae%c0%ae/x',
    '/%e0%80%ae%e0%80%ae/x',
    '/%ff',
    'a/b',
    '',
  ];
  for (const uri of tricks) {
    it(`answers ${JSON.stringify(uri)} with 400 before any lookup`, async () => {
      const router = loadRouter(ROUTES);
      const result = await router.run(viewerRequest('docs.example.com', uri));
      assert.equal(result.statusCode, 400, `${uri} was rewritten to ${result.uri}`);
      assert.equal(result.headers['cache-control'].value, 'no-store');
      assert.match(result.body.data, /400 Bad Request/);
      assert.deepEqual(router.keys, []);
    });
  }
});
