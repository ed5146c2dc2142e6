// Shared by the browser tests of the browser API, the relay client, the demo page and the npm
// package: static serving on 127.0.0.1, Chromium as tests/browser/run.mjs launches it, checks.
import { createServer } from 'node:http';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

/** The repository root. */
export const root = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
/** Where tests leave screenshots and scratch builds (gitignored). */
export const artifacts = join(root, 'tests', 'browser', 'artifacts');

const require = createRequire(join(root, 'web', 'package.json'));
const { chromium } = require('playwright-core');

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css',
};

/**
 * Serves files on 127.0.0.1 (a free port). `routes` maps a URL prefix to a directory, or to a
 * function returning `{type, body}` for exact paths; the longest matching prefix wins.
 */
export function serve(routes) {
  const prefixes = Object.keys(routes).sort((a, b) => b.length - a.length);
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const prefix = prefixes.find((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`));
    const route = prefix === undefined ? undefined : routes[prefix];
    try {
      if (typeof route === 'function') {
        const { type, body } = await route(path);
        res.writeHead(200, { 'content-type': type }).end(body);
        return;
      }
      if (typeof route !== 'string') { res.writeHead(404).end(); return; }
      let file = normalize(join(route, path.slice(prefix.length)));
      if (!file.startsWith(normalize(route))) { res.writeHead(403).end(); return; }
      if (path.endsWith('/')) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Chromium's flags for these tests (see tests/browser/run.mjs and shared/PLATFORM.md). */
export const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--allow-loopback-in-peer-connection', '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];

/** A fresh Chromium profile (persistent context); each call is an independent browser. */
export async function launch() {
  return chromium.launchPersistentContext(await mkdtemp(join(tmpdir(), 'hush-chromium-')), {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: FLAGS,
  });
}

/** Logs page errors and console errors with a label. */
export function watch(page, label) {
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [${label}] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`  [${label} error] ${e.message}`));
}

/** Pass/fail bookkeeping: `check(name, ok, detail)`, then `done()` exits 1 on any failure. */
export function checks(suite) {
  let failures = 0;
  return {
    check(name, ok, detail) {
      console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail !== undefined ? ` ${JSON.stringify(detail)}` : ''}`);
      if (!ok) failures++;
    },
    done() {
      if (failures) { console.log(`${suite}: ${failures} check(s) failed`); process.exit(1); }
      console.log(`${suite}: all passed`);
    },
  };
}

/**
 * Sum of a `dropped` map, leaving out `duplicate`: byte-identical copies of frames already
 * decrypted, which Chromium's receive pipeline hands the transform at times (web/src/hybrid.ts,
 * "Duplicates"); they are no failure. Any other reason counts, `replayed` included.
 */
export const drops = (d) => Object.entries(d ?? {}).reduce((a, [k, n]) => (k === 'duplicate' ? a : a + n), 0);

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** The relay binary that `cargo build -p hush-relay --bin hush-relay` makes. */
export function relayBinary() {
  return join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'hush-relay');
}

/**
 * Starts `hush-relay --dev` on 127.0.0.1 (a free port) serving web/; resolves once /healthz
 * answers. `stop()` ends it (by its own pid).
 */
export async function startRelay() {
  const { spawn } = await import('node:child_process');
  const port = await freePort();
  const child = spawn(relayBinary(), ['--dev', '--bind', `127.0.0.1:${port}`, '--static-dir', join(root, 'web')], {
    cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let log = '';
  const keep = (d) => { log = (log + d.toString()).slice(-20_000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`hush-relay exited (${child.exitCode}): ${log}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
    if (i === 99) { child.kill(); throw new Error(`hush-relay did not answer /healthz: ${log}`); }
  }
  return {
    base, ws: `ws://127.0.0.1:${port}/v1/rtc`, log: () => log,
    async token(room) {
      const res = await fetch(`${base}/dev/token`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room }),
      });
      const body = await res.json();
      if (!body.token) throw new Error(`no token: ${res.status} ${JSON.stringify(body)}`);
      return body.token;
    },
    stop() { if (child.exitCode === null) child.kill('SIGTERM'); },
  };
}

/** A headless Chromium browser (non-persistent): `browser.newContext()` per participant. */
export async function launchBrowser() {
  const { chromium: c } = require('playwright-core');
  return c.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: FLAGS });
}
