// Prepares tests/browser/pkg.test.mjs (this step needs the npm registry, so `cargo xtask test`
// runs it outside the loopback-only namespace): builds the npm package from web/dist and
// web/wasm, packs it with `npm pack`, installs the tarball into a scratch Vite app with an
// exact vite version, and builds the app with `vite build`. Everything goes to
// tests/browser/artifacts/pkg-app (gitignored); the test serves it from there.
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { artifacts, root } from './harness.mjs';

/** The exact vite the scratch app builds with. */
const VITE = '7.3.8';

const app = join(artifacts, 'pkg-app');

function run(cmd, args, cwd) {
  console.log(`+ (${cwd.slice(root.length + 1) || '.'}) ${cmd} ${args.join(' ')}`);
  return execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
}

run('node', ['pkg/build.mjs'], root);
await mkdir(join(app, 'src'), { recursive: true });
for (const f of await readdir(app)) if (f.endsWith('.tgz')) await rm(join(app, f));
const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', app], join(root, 'pkg')));
const tarball = packed[0].filename;
console.log(`packed ${tarball}: ${packed[0].entryCount} files, ${packed[0].size} bytes`);

await writeFile(join(app, 'package.json'), JSON.stringify({
  name: 'hush-pkg-test-app', private: true, type: 'module',
  devDependencies: { vite: VITE, 'hush-e2ee': `file:./${tarball}` },
}, null, 2));
await writeFile(join(app, 'index.html'), `<!doctype html>
<meta charset="utf-8">
<title>hush-e2ee from Vite</title>
<script type="module" src="/src/main.js"></script>
`);
// The app imports the package by name, as any app would; the call itself is shared with the
// plain-module page.
await writeFile(join(app, 'src', 'main.js'), `import { HushE2ee, Suite } from 'hush-e2ee';
import { call, beforeInit } from './pkg-call.js';
window.hushPkg = { call: (o) => call(HushE2ee, o), beforeInit: () => beforeInit(HushE2ee), suite: Suite.AES_128_GCM_SHA256_128 };
window.hushPkgReady = true;
`);
await cp(join(root, 'tests', 'browser', 'pkg-call.js'), join(app, 'src', 'pkg-call.js'));
// Always install the freshly packed tarball (npm reuses its cache for vite).
await rm(join(app, 'node_modules', 'hush-e2ee'), { recursive: true, force: true });
await rm(join(app, 'package-lock.json'), { force: true });
run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], app);
await rm(join(app, 'dist'), { recursive: true, force: true });
run('npx', ['vite', 'build', '--logLevel', 'warn'], app);
console.log(`pkg-app built with vite ${VITE}`);
