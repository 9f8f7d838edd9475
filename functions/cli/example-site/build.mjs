// Builds the example site into dist/ with nothing but Node's standard library.
// Pages are HTML fragments under pages/ whose first line names the title:
//   <!-- title: About -->
// Each becomes {name}/index.html in dist/ (index and 404 stay at the top), wrapped in
// layout.html. CSS and JS get a content hash in their file names, so they can be cached
// forever while each deployment's pages point at the assets they were built with.

import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";

const started = Date.now();
const deployment = process.env.SLIPWAY_DEPLOYMENT_ID ?? "local build";
const builtAt = new Date().toISOString();
const out = "dist";

console.log(`building the example site for deployment ${deployment}`);
await rm(out, { recursive: true, force: true });

async function fingerprint(source) {
  const body = await readFile(source);
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 8);
  const [stem, ext] = source.split("/").pop().split(".");
  const name = `assets/${stem}.${hash}.${ext}`;
  await mkdir(join(out, "assets"), { recursive: true });
  await writeFile(join(out, name), body);
  console.log(`asset ${name} (${body.length} bytes)`);
  return `/${name}`;
}

const css = await fingerprint("assets/site.css");
const js = await fingerprint("assets/site.js");
const layout = await readFile("layout.html", "utf8");

async function* walk(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.name.endsWith(".html")) yield path;
  }
}

const escape = (text) =>
  text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

const fill = (template, values) => template.replace(/{{(\w+)}}/g, (_, key) => values[key] ?? "");

let pages = 0;
for await (const source of walk("pages")) {
  const name = relative("pages", source).split(sep).join("/").replace(/\.html$/, "");
  const text = await readFile(source, "utf8");
  const title = /^<!-- title: (.*) -->/.exec(text)?.[1] ?? name;
  const target = name === "index" || name === "404" ? `${name}.html` : `${name}/index.html`;
  const values = { title: escape(title), css, js, deployment: escape(deployment), built: builtAt };
  values.content = fill(text.replace(/^<!--.*-->\n/, ""), values);
  const html = fill(layout, values);
  await mkdir(dirname(join(out, target)), { recursive: true });
  await writeFile(join(out, target), html);
  console.log(`page /${target}`);
  pages += 1;
}

console.log(`built ${pages} pages into ${out}/ in ${Date.now() - started} ms`);
