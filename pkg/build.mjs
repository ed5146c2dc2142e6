// Builds the npm package `hush-e2ee` in pkg/ from what `cargo xtask web` built: the compiled
// TypeScript (web/dist: the browser API, the relay client, the Worker) and the wasm module with
// its wasm-bindgen glue (web/wasm). Run by `cargo xtask web`; then `npm pack ./pkg` makes the
// tarball. The layout keeps the relative paths the code uses: dist/worker.js imports
// ../wasm/hush_wasm.js, and dist/api/index.js finds ../worker.js and ../../wasm/ by default.
import { cp, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = dirname(fileURLToPath(import.meta.url));
const web = join(pkg, '..', 'web');
/** Compiled directories that are not part of the package (the demo page's own code). */
const SKIP = new Set(['demo']);
const WASM = ['hush_wasm.js', 'hush_wasm.d.ts', 'hush_wasm_bg.wasm', 'hush_wasm_bg.wasm.d.ts'];

async function copyTree(from, to) {
  await mkdir(to, { recursive: true });
  let n = 0;
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP.has(entry.name)) n += await copyTree(src, join(to, entry.name));
    } else if (entry.name.endsWith('.js') || entry.name.endsWith('.d.ts')) {
      await cp(src, join(to, entry.name));
      n++;
    }
  }
  return n;
}

for (const need of ['dist/api/index.js', 'dist/relay/client.js', 'dist/worker.js', 'wasm/hush_wasm_bg.wasm']) {
  try {
    await stat(join(web, need));
  } catch {
    console.error(`pkg/build.mjs: web/${need} is missing: run \`cargo xtask web\` first`);
    process.exit(1);
  }
}
await rm(join(pkg, 'dist'), { recursive: true, force: true });
await rm(join(pkg, 'wasm'), { recursive: true, force: true });
const files = await copyTree(join(web, 'dist'), join(pkg, 'dist'));
await mkdir(join(pkg, 'wasm'), { recursive: true });
for (const f of WASM) await cp(join(web, 'wasm', f), join(pkg, 'wasm', f));
console.log(`pkg/build.mjs: ${files} files into ${relative(process.cwd(), join(pkg, 'dist'))}, wasm into ${relative(process.cwd(), join(pkg, 'wasm'))}`);
