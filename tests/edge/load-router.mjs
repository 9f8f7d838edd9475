// Loads infra/edge/router.js the way every non-CloudFront host does (the Rust local edge
// follows the same contract): swap the `cloudfront` import for a global shim, run the file
// as a classic script in a fresh context, and take the global `handler`.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

export const ROUTER_PATH = fileURLToPath(new URL('../../infra/edge/router.js', import.meta.url));
export const IMPORT_LINE = "import cf from 'cloudfront';";
export const SHIM_LINE = 'const cf = globalThis.__slipwayCloudfront;';

export function shimSource(source) {
  const lines = source.split('\n');
  const at = lines.findIndex((line) => line.trimEnd() === IMPORT_LINE);
  if (at < 0) {
    throw new Error(`router source has no line \`${IMPORT_LINE}\``);
  }
  lines[at] = SHIM_LINE;
  return lines.join('\n');
}

// The `cloudfront` module over `routes` (host → KVS value): like CloudFront's, `get` rejects
// when the key is missing. `keys` lists the keys looked up, in order.
export function cloudfrontShim(routes) {
  const table = new Map(Object.entries(routes));
  const keys = [];
  const cloudfront = {
    kvs: () => ({
      get: async (key) => {
        keys.push(key);
        if (!table.has(key)) {
          throw new Error(`The key ${key} does not exist`);
        }
        return table.get(key);
      },
    }),
  };
  return { cloudfront, keys, table };
}

// Loads the router in a fresh context over `routes`.
export function loadRouter(routes, source = readFileSync(ROUTER_PATH, 'utf8')) {
  const { cloudfront: shim, keys, table } = cloudfrontShim(routes);
  const context = vm.createContext({ __slipwayCloudfront: shim });
  vm.runInContext(shimSource(source), context, { filename: 'router.js' });
  if (typeof context.handler !== 'function') {
    throw new Error('router.js defines no global `handler` function');
  }
  return {
    // Keys looked up so far, in order.
    keys,
    // Runs the handler; the result is copied out of the script's realm as plain JSON.
    async run(event) {
      const result = await context.handler(event);
      return JSON.parse(JSON.stringify(result));
    },
    set(host, value) {
      table.set(host, value);
    },
  };
}

// A viewer-request event in the cloudfront-js-2.0 shape.
export function viewerRequest(host, uri, querystring = {}) {
  const headers = host === undefined ? {} : { host: { value: host } };
  return {
    version: '1.0',
    context: { eventType: 'viewer-request' },
    viewer: { ip: '127.0.0.1' },
    request: { method: 'GET', uri, querystring, headers, cookies: {} },
  };
}
