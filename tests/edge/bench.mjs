// Times infra/edge/router.js under Node over a fixed-seed mix of viewer requests, and counts
// the KVS lookups each request makes. Run by slipway-bench (scenario 5); prints one JSON
// document on stdout:
//   node tests/edge/bench.mjs [--uris 10000] [--passes 10] [--runs 5] [--max-seconds 60]
// The router runs in this realm, as its own runtime runs it at the edge: a `vm` context's
// global object answers every builtin lookup (decodeURIComponent, ...) through interceptors,
// which doubles the time per request here and would measure the harness, not the router.
// Every request's outcome is checked against what its kind must give (a rewrite into the
// host's deployment, a 400, a 404), so a router that stops routing cannot get faster.
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

import { ROUTER_PATH, cloudfrontShim, shimSource, viewerRequest } from './load-router.mjs';

const options = { uris: 10000, passes: 10, runs: 5, 'max-seconds': 60 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i].replace(/^--/, '');
  const value = Number(argv[i + 1]);
  if (!(name in options) || !Number.isInteger(value) || value < 1) {
    throw new Error(`usage: bench.mjs [--uris N] [--passes N] [--runs N] [--max-seconds N]; got ${argv[i]} ${argv[i + 1]}`);
  }
  options[name] = value;
}

// mulberry32: the same mix on every run and machine.
let seed = 0x5eed0e6e;
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const below = (n) => Math.floor(random() * n);
const pick = (list) => list[below(list.length)];

// The KVS as a busy account's: 1,000 hosts (production, previews, deployments), each flag mix.
const FLAGS = ['', ';s', ';c', ';sc'];
const routes = {};
const hosts = [];
for (let n = 0; n < 1000; n += 1) {
  const site = `site-${n % 250}`;
  const host = n < 250 ? `${site}.sites.example.com` : `pr-${n}--${site}.preview.example.com`;
  const id = `01jd${String(n).padStart(22, '0')}`;
  routes[host] = `${site}/${id}${FLAGS[n % FLAGS.length]}`;
  hosts.push(host);
}

const word = () => pick(['docs', 'guide', 'blog', 'users', 'settings', 'api', 'intro', 'about', 'pricing', 'team']);
const BAD = [
  '/../etc/passwd', '/a/../../b', '/%2e%2e/x', '/.%2E/x', '/a%2f..%2fb', '/%252e%252e/x',
  '/a\\b', '/a%5cb', '/%00', '/index.html%00.js', '//etc/passwd', '/a//b', '/%', '/%zz',
  '/%c0%ae%c0%ae/x', '/a/./b',
];
// [kind, share in percent, path generator]
const KINDS = [
  ['asset', 35, () => pick([
    () => `/assets/chunk-${below(300)}.${below(1e8).toString(16)}.js`,
    () => `/assets/chunk-${below(150)}.${below(1e8).toString(16)}.css`,
    () => `/img/${below(250)}.png`,
    () => `/img/${below(300)}.svg`,
    () => '/favicon.ico',
  ])()],
  ['page', 18, () => pick([
    () => `/docs/section-${below(20)}/page-${below(400)}.html`,
    () => '/',
    () => '/index.html',
  ])()],
  ['spa route', 14, () => `/${word()}/${below(10000)}/${word()}${random() < 0.3 ? `/${word()}` : ''}`],
  ['trailing slash', 8, () => `/${word()}/${random() < 0.5 ? `${word()}/` : ''}`],
  ['clean url', 6, () => `/${word()}${random() < 0.5 ? `/post-${below(500)}` : ''}`],
  ['encoded', 5, () => pick([
    () => `/files/hello%20world-${below(100)}.pdf`,
    () => `/caf%C3%A9/${word()}`,
    () => `/docs/%E6%97%A5%E6%9C%AC/${below(50)}.html`,
  ])()],
  ['well-known', 2, () => pick(['/.well-known/security.txt', '/.well-known/assetlinks.json'])],
  ['bad path', 6, () => pick(BAD)],
  ['unknown host', 6, () => `/${word()}/${below(100)}.html`],
];

// Each request: its event, the URI to restore before each call (routing rewrites it), and its kind.
const requests = [];
for (let i = 0; i < options.uris; i += 1) {
  let roll = below(100);
  let at = 0;
  while (roll >= KINDS[at][1]) {
    roll -= KINDS[at][1];
    at += 1;
  }
  const [kind, , path] = KINDS[at];
  const known = pick(hosts);
  // Browsers send the host as typed; some clients add the port.
  let host = kind === 'unknown host' ? `gone-${below(1000)}.sites.example.com` : known;
  if (random() < 0.05) host = host.toUpperCase();
  if (random() < 0.05) host = `${host}:443`;
  const uri = path();
  const querystring = random() < 0.1 ? { v: { value: String(below(100)) } } : {};
  const event = viewerRequest(host, uri, querystring);
  event.request.headers['user-agent'] = { value: 'Mozilla/5.0 (bench)' };
  event.request.headers.accept = { value: '*/*' };
  requests.push({ event, uri, kind, host: known });
}

const { cloudfront, keys } = cloudfrontShim(routes);
globalThis.__slipwayCloudfront = cloudfront;
vm.runInThisContext(shimSource(readFileSync(ROUTER_PATH, 'utf8')), { filename: 'router.js' });
const { handler } = globalThis;

// One untimed pass that checks every outcome and counts lookups by outcome.
const outcomes = { routed: { requests: 0, lookups: 0, min: Infinity, max: 0 }, rejected: { requests: 0, lookups: 0, min: Infinity, max: 0 }, 'unknown host': { requests: 0, lookups: 0, min: Infinity, max: 0 } };
const byKind = {};
const wrong = [];
for (const { event, uri, kind, host } of requests) {
  event.request.uri = uri;
  keys.length = 0;
  const result = await handler(event);
  let outcome;
  if (result.statusCode === 400) outcome = 'rejected';
  else if (result.statusCode === 404) outcome = 'unknown host';
  else if (result.statusCode === undefined && result.uri.startsWith(`/${routes[host].split(';')[0]}/`)) outcome = 'routed';
  const expected = kind === 'bad path' ? 'rejected' : kind === 'unknown host' ? 'unknown host' : 'routed';
  if (outcome !== expected) {
    wrong.push({ uri, kind, got: result.statusCode ?? result.uri });
    continue;
  }
  const counts = outcomes[outcome];
  counts.requests += 1;
  counts.lookups += keys.length;
  counts.min = Math.min(counts.min, keys.length);
  counts.max = Math.max(counts.max, keys.length);
  byKind[kind] = (byKind[kind] ?? 0) + 1;
}
if (wrong.length > 0) {
  throw new Error(`${wrong.length} requests were not handled as their kind requires, e.g. ${JSON.stringify(wrong.slice(0, 5))}`);
}
for (const counts of Object.values(outcomes)) {
  if (counts.requests === 0) counts.min = 0;
}

// Timed: `passes` passes over every request per run; one pass first to let the JIT settle.
const deadline = process.hrtime.bigint() + BigInt(options['max-seconds']) * 1_000_000_000n;
async function pass() {
  for (let i = 0; i < requests.length; i += 1) {
    const { event, uri } = requests[i];
    event.request.uri = uri;
    await handler(event);
  }
  keys.length = 0;
}
await pass();
const nsPerRequest = [];
for (let run = 0; run < options.runs && process.hrtime.bigint() < deadline; run += 1) {
  let done = 0;
  const start = process.hrtime.bigint();
  while (done < options.passes && process.hrtime.bigint() < deadline) {
    await pass();
    done += 1;
  }
  const elapsed = Number(process.hrtime.bigint() - start);
  nsPerRequest.push(elapsed / (done * requests.length));
}

console.log(JSON.stringify({
  node: process.version,
  requests: requests.length,
  passes: options.passes,
  kinds: byKind,
  lookups: outcomes,
  ns_per_request: nsPerRequest,
}));
