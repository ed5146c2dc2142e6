// The setup every browser test shares (tests/browser/*.mjs): static serving on 127.0.0.1, the
// Chromium and Firefox launches, the relay process and its test pages, and the pass/fail
// bookkeeping. `cargo xtask test` runs each `*.test.mjs` (after its `*.prepare.mjs`) as
//   unshare --net sh -c 'ip link set lo up && node tests/browser/NAME.test.mjs'
// so nothing here may reach beyond 127.0.0.1.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { access, mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

/** The repository root. */
export const root = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
/** Where tests leave screenshots and scratch builds (gitignored). */
export const artifacts = join(root, 'tests', 'browser', 'artifacts');
/** Firefox ESR, as `cargo xtask test` installs it (Debian `firefox-esr`). */
export const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';

// Playwright and Puppeteer come from web/node_modules; loaded on first use, so that the
// prepare scripts can import this module before `npm ci` ran.
const require = createRequire(join(root, 'web', 'package.json'));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The path of `name` under the artifacts directory, which this creates. */
export async function artifact(name) {
  await mkdir(artifacts, { recursive: true });
  return join(artifacts, name);
}

const TYPES = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css',
};

/**
 * Serves files on 127.0.0.1 (a free port); resolves with the server, its URL in `.base`.
 * `routes` maps a URL prefix to a directory or a file, or to a function `(path, req)` returning
 * `{type, body, status?}` for exact paths; the longest matching prefix wins. `/favicon.ico`, which
 * Chromium asks for, is an empty answer (keeping a 404 out of the log) unless routed.
 */
export function serve(given) {
  const routes = { '/favicon.ico': async () => ({ type: 'image/x-icon', body: '' }), ...given };
  const prefixes = Object.keys(routes).sort((a, b) => b.length - a.length);
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const prefix = prefixes.find((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`));
    const route = prefix === undefined ? undefined : routes[prefix];
    try {
      if (typeof route === 'function') {
        const { type, body, status = 200 } = await route(path, req);
        res.writeHead(status, { 'content-type': type }).end(body);
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
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    server.base = `http://127.0.0.1:${server.address().port}`;
    resolve(server);
  }));
}

/** Chromium's flags for these tests (see shared/PLATFORM.md). */
export const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--allow-loopback-in-peer-connection', '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];
const CHROMIUM = { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: FLAGS };

/** A fresh Chromium profile (persistent context); each call is an independent browser. */
export async function launch() {
  const { chromium } = require('playwright-core');
  return chromium.launchPersistentContext(await mkdtemp(join(tmpdir(), 'hush-chromium-')), CHROMIUM);
}

/** A headless Chromium browser (non-persistent): `browser.newContext()` per participant. */
export async function launchBrowser() {
  const { chromium } = require('playwright-core');
  return chromium.launch(CHROMIUM);
}

/** Headless Firefox ESR over WebDriver BiDi (puppeteer-core), with fake camera and microphone. */
export async function launchFirefox() {
  const puppeteer = require('puppeteer-core');
  return puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, headless: true, protocol: 'webDriverBiDi',
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.peerconnection.ice.loopback': true,
      'permissions.default.camera': 1,
      'permissions.default.microphone': 1,
    },
  });
}

/**
 * Serves the repository root, launches Chromium (`launch()`) and opens `path` there in a
 * watched page; the server and the browser close with suite `t`. Resolves with the page.
 */
export async function openFromRoot(t, path, label = 'page') {
  const server = t.use(await serve({ '/': root }));
  const page = await t.use(await launch()).newPage();
  watch(page, label);
  await page.goto(`${server.base}${path}`);
  return page;
}

/** Logs page errors and console errors with a label (Playwright and Puppeteer pages). */
export function watch(page, label) {
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [${label}] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`  [${label} error] ${e.message}`));
  page.on('requestfailed', (r) => console.log(`  [${label} request failed] ${r.url()}: ${r.failure()?.errorText}`));
}

/**
 * A test script's bookkeeping. `check(name, ok, detail)` prints a pass or a failure (with
 * `detail`; with `quiet`, only on failure). `use(thing)` registers `thing.close()` for the end
 * and returns `thing`. `run(body)` runs the test: a throw counts as a failed check (and prints
 * the tail of each used thing's `log()`, the relay's), then everything used is closed, last
 * first, and the script exits 1 on any failure.
 */
export function suite(name, { quiet = false } = {}) {
  let failures = 0;
  const used = [];
  const check = (label, ok, detail) => {
    const shown = detail !== undefined && (!ok || !quiet);
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${label}${shown ? ` ${JSON.stringify(detail)}` : ''}`);
    if (!ok) failures++;
  };
  return {
    check,
    use(thing) { used.push(thing); return thing; },
    async run(body) {
      try {
        await body();
      } catch (e) {
        check(`${name} ran (${e.message})`, false);
        console.log(e.stack);
        for (const t of used) if (typeof t.log === 'function') console.log(t.log().slice(-4000));
      } finally {
        for (const t of used.reverse()) await Promise.resolve().then(() => t.close()).catch(() => {});
      }
      if (failures) { console.log(`${name}: ${failures} check(s) failed`); process.exit(1); }
      console.log(`${name}: all passed`);
    },
  };
}

/**
 * Sum of a `dropped` map, leaving out `duplicate`: byte-identical copies of frames already
 * decrypted, which Chromium's receive pipeline hands the transform at times (web/src/hybrid.ts,
 * "Duplicates"), and `before_join`: frames a member got sealed before it joined, under an epoch
 * it never holds (web/src/receivers.ts). Neither is a failure. Any other reason counts,
 * `replayed` and `unknown_kid` included.
 */
export const drops = (d) => Object.entries(d ?? {}).reduce((a, [k, n]) => (k === 'duplicate' || k === 'before_join' ? a : a + n), 0);

/** Exits with a FAIL line unless every path exists (a binary, a browser, a prepared build). */
export async function needFiles(paths, hint) {
  for (const p of paths) {
    try { await access(p); } catch {
      console.log(`FAIL ${p} is missing: ${hint}`);
      process.exit(1);
    }
  }
}

/** The relay binary that `buildRelay()` makes (`HUSH_RELAY_PROFILE=release`: the release one, for benchmarks). */
export function relayBinary() {
  return join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), process.env.HUSH_RELAY_PROFILE ?? 'debug', 'hush-relay');
}

/** Builds the relay binary (the prepare scripts do, outside the network namespace). */
export function buildRelay() {
  console.log('+ cargo build -p hush-relay --bin hush-relay');
  execFileSync('cargo', ['build', '-p', 'hush-relay', '--bin', 'hush-relay'], { cwd: root, stdio: 'inherit' });
}

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Starts `hush-relay --dev` on 127.0.0.1 (a free port) serving web/; resolves once /healthz
 * answers (exits with a FAIL line when the binary is missing). `token(room)` asks its dev
 * endpoint for a token, `dev(room)` for `{token, participant}`; `close()` ends it (by its own
 * pid); `log()` is its recent output. `link` (`netLink()`): the relay runs in the link's relay
 * namespace, media on the link's relay address, and signaling reaches it over the link through
 * `tcp-forward.mjs` (dev mode serves loopback peers only); call this from the client namespace.
 * `port`: listen there instead of a free port; `devKeyFile`: keep the dev keys there
 * (`--dev-key-file`), so a relay started again on the same port accepts what the first minted.
 * `kill()` ends it at once (SIGKILL).
 */
export async function startRelay({ link, port: wanted, devKeyFile, args: extra = [] } = {}) {
  await needFiles([relayBinary()], 'cargo build -p hush-relay --bin hush-relay');
  const port = wanted ?? await freePort();
  // `--drain-secs 0`: a test's SIGTERM stops the relay at once (participants are still told).
  const args = ['--dev', '--bind', `127.0.0.1:${port}`, '--static-dir', join(root, 'web'), '--drain-secs', '0',
    ...(link ? ['--media-ip', link.relayIp] : []), ...(devKeyFile ? ['--dev-key-file', devKeyFile] : []), ...extra];
  const options = { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } };
  const child = link
    ? spawn('ip', ['netns', 'exec', link.relayNs, relayBinary(), ...args], options)
    : spawn(relayBinary(), args, options);
  const forwarder = (ns, from, to) => spawn('ip', ['netns', 'exec', ns, process.execPath,
    join(root, 'tests', 'browser', 'tcp-forward.mjs'), from, to], { stdio: 'ignore' });
  const forwards = link ? [forwarder(link.relayNs, `${link.relayIp}:${port}`, `127.0.0.1:${port}`)] : [];
  // Through a gateway (`netTurn`): the clients reach signaling at the gateway, which passes
  // TCP to the relay (a firewall that lets the web port through).
  if (link?.gatewayNs) forwards.push(forwarder(link.gatewayNs, `${link.gatewayIp}:${port}`, `${link.relayIp}:${port}`));
  let log = '';
  const keep = (d) => {
    log = (log + d.toString()).slice(-Number(process.env.RELAY_LOG_KEEP ?? 20_000));
    // RELAY_LOG_FILE: the whole log there too (with RUST_LOG=hush_relay=debug, say).
    if (process.env.RELAY_LOG_FILE) appendFileSync(process.env.RELAY_LOG_FILE, d);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const host = link ? link.gatewayIp ?? link.relayIp : '127.0.0.1';
  const base = `http://${host}:${port}`;
  const stop = (signal = 'SIGTERM') => {
    for (const p of [child, ...forwards]) if (p.exitCode === null) p.kill(signal);
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`hush-relay exited (${child.exitCode}): ${log}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch { /* not up yet */ }
    await sleep(100);
    if (i === 99) { stop(); throw new Error(`hush-relay did not answer /healthz: ${log}`); }
  }
  return {
    base, ws: `ws://${host}:${port}/v1/rtc`, log: () => log,
    async dev(room) {
      const res = await this.devFetch('/dev/token', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room }),
      });
      const body = JSON.parse(res.body);
      if (!body.token) throw new Error(`no token: ${res.status} ${JSON.stringify(body)}`);
      return { token: body.token, participant: body.participant };
    },
    async token(room) { return (await this.dev(room)).token; },
    /**
     * A request to a dev endpoint, as the app backend's stand-in makes it: `{status, body}`.
     * Over a link the relay is reached at another address, but dev endpoints answer only a
     * loopback `Host` (DNS rebinding), so the request names the relay's own loopback address.
     */
    devFetch: (path, init = {}) => new Promise((resolve, reject) => {
      const req = httpRequest({
        host, port, path, method: init.method ?? 'GET',
        headers: { ...(init.headers ?? {}), host: `127.0.0.1:${port}` },
      }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end(init.body);
    }),
    close: () => stop(),
    /** Kills it at once (SIGKILL); resolves when it is gone (its port free again). */
    kill: () => {
      stop('SIGKILL');
      return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve)));
    },
    port,
  };
}

/**
 * Two network namespaces joined by a veth pair, for tests of real network conditions (root
 * only; addresses from the benchmarking range 198.18.0.0/15, nothing leaves the machine): the
 * relay's (`relayNs`, `relayIp` on `r0`) and the clients' (`clientNs`, `clientIp` on `c0`), each
 * with `lo` up. `close()` deletes both (and the pair).
 */
export function netLink(tag = 'hush') {
  const id = `${tag}${process.pid}`;
  const link = { relayNs: `${id}r`, clientNs: `${id}c`, relayIp: '198.18.0.1', clientIp: '198.18.0.2', clientDev: 'c0' };
  const ip = (...a) => execFileSync('ip', a, { stdio: 'inherit' });
  ip('netns', 'add', link.relayNs);
  ip('netns', 'add', link.clientNs);
  ip('link', 'add', 'c0', 'netns', link.clientNs, 'type', 'veth', 'peer', 'name', 'r0', 'netns', link.relayNs);
  for (const [ns, dev, addr] of [[link.relayNs, 'r0', link.relayIp], [link.clientNs, 'c0', link.clientIp]]) {
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
    ip('-n', ns, 'link', 'set', dev, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  link.close = () => {
    for (const ns of [link.clientNs, link.relayNs]) {
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ }
    }
  };
  return link;
}

/**
 * Three network namespaces in a row, for TURN: clients (`clientNs`, `clientIp` on `c0`) —
 * gateway (`gatewayNs`: `gatewayIp` toward the clients, `gatewayRelaySideIp` toward the relay)
 * — relay (`relayNs`, `relayIp`). The gateway forwards no packets, so no UDP from a client
 * reaches the relay: the clients' only way to its media is a TURN server in the gateway (TCP
 * to `gatewayIp`, UDP from `gatewayRelaySideIp`), and signaling goes through a TCP forwarder
 * there (`startRelay`). `close()` deletes all three.
 */
export function netTurn(tag = 'hush') {
  const id = `${tag}${process.pid}`;
  const link = {
    clientNs: `${id}c`, gatewayNs: `${id}g`, relayNs: `${id}r`, clientIp: '198.18.1.2', gatewayIp: '198.18.1.1',
    gatewayRelaySideIp: '198.18.2.1', relayIp: '198.18.2.2', clientDev: 'c0',
  };
  const ip = (...a) => execFileSync('ip', a, { stdio: 'inherit' });
  for (const ns of [link.clientNs, link.gatewayNs, link.relayNs]) ip('netns', 'add', ns);
  ip('link', 'add', 'c0', 'netns', link.clientNs, 'type', 'veth', 'peer', 'name', 'g0', 'netns', link.gatewayNs);
  ip('link', 'add', 'g1', 'netns', link.gatewayNs, 'type', 'veth', 'peer', 'name', 'r0', 'netns', link.relayNs);
  for (const [ns, dev, addr] of [[link.clientNs, 'c0', link.clientIp], [link.gatewayNs, 'g0', link.gatewayIp],
    [link.gatewayNs, 'g1', link.gatewayRelaySideIp], [link.relayNs, 'r0', link.relayIp]]) {
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
    ip('-n', ns, 'link', 'set', dev, 'up');
  }
  for (const ns of [link.clientNs, link.gatewayNs, link.relayNs]) ip('-n', ns, 'link', 'set', 'lo', 'up');
  link.close = () => {
    for (const ns of [link.clientNs, link.gatewayNs, link.relayNs]) {
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ }
    }
  };
  return link;
}

/**
 * `netTurn`'s three namespaces, with the gateway routing between clients and relay (IP
 * forwarding on, default routes through it): a path with a middle box the test controls, e.g.
 * `lossy-link.py` there for random loss (`lossyLink`).
 */
export function netRouted(tag = 'hush') {
  const link = netTurn(tag);
  execFileSync('ip', ['netns', 'exec', link.gatewayNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  execFileSync('ip', ['-n', link.clientNs, 'route', 'add', 'default', 'via', link.gatewayIp]);
  execFileSync('ip', ['-n', link.relayNs, 'route', 'add', 'default', 'via', link.gatewayRelaySideIp]);
  link.routed = true;
  return link;
}

/**
 * Drops `loss` (0..1) of the UDP packets from source port `sport` or to destination port `dport`
 * (neither: all UDP) that arrive at a `netRouted` gateway on `iif` (`g0`: from the clients, `g1`:
 * from the relay), and holds the rest of them back `delayMs` (tests/browser/lossy-link.py, in
 * userspace: this kernel has no netem). Resolves once it runs; `stats()` reads its counts,
 * `stop()` ends it.
 */
export async function lossyLink(link, { iif = 'g0', loss = 0, sport = 0, dport = 0, delayMs = 0, seed = 1 }) {
  const statsFile = join(await mkdtemp(join(tmpdir(), 'hush-loss-')), 'stats.json');
  const child = spawn('ip', ['netns', 'exec', link.gatewayNs, '/usr/bin/python3', join(root, 'tests', 'browser', 'lossy-link.py'),
    '--iif', iif, '--loss', String(loss), '--sport', String(sport), '--dport', String(dport), '--delay-ms', String(delayMs),
    '--seed', String(seed), '--stats', statsFile],
  { stdio: ['ignore', 'inherit', 'inherit'] });
  const stats = async () => JSON.parse(await readFile(statsFile, 'utf8'));
  for (let i = 0; i < 50; i++) {
    if (child.exitCode !== null) throw new Error(`lossy-link.py exited (${child.exitCode})`);
    try { await stats(); break; } catch { await sleep(100); }
  }
  return {
    stats,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      for (let i = 0; i < 50 && child.exitCode === null; i++) await sleep(100);
      return stats();
    },
  };
}

/**
 * Runs a network test: outside, makes a `netLink(tag)`, runs this same script inside its
 * client namespace (where `link` is set), deletes the namespaces and exits with the script's
 * status; inside, resolves with the link. Call it first thing: `const link = await onLink('x')`
 * (`make`: `netTurn` for that topology).
 */
export async function onLink(tag, make = netLink) {
  if (process.env.HUSH_NET_LINK) return JSON.parse(process.env.HUSH_NET_LINK);
  const link = make(tag);
  let status = 1;
  try {
    const r = spawnSync('ip', ['netns', 'exec', link.clientNs, process.execPath, process.argv[1], ...process.argv.slice(2)], {
      stdio: 'inherit', env: { ...process.env, HUSH_NET_LINK: JSON.stringify(link) },
    });
    status = r.status ?? 1;
  } finally {
    link.close();
  }
  process.exit(status);
}

/** Forwards a request to the relay's dev endpoint (the app backend's stand-in). */
function devProxy(relay) {
  return async (path, req) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const init = req.method === 'POST'
      ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat(chunks) }
      : {};
    const res = await relay.devFetch(path, init);
    return { status: res.status, type: 'application/json', body: res.body };
  };
}

/**
 * Serves tests/browser/relay.html (one participant: relay-page.js, the browser API and the
 * relay client from web/dist) and what it loads, tests/browser/keys.worker.js included. With
 * `relay`, its `/dev/attest` and `/dev/backend-key` too (same origin as the page, as an app's
 * backend would be), for the vouching join.
 */
export function relayPages(relay) {
  const here = join(root, 'tests', 'browser');
  return serve({
    ...(relay ? { '/dev/attest': devProxy(relay), '/dev/backend-key': devProxy(relay), '/dev/token': devProxy(relay) } : {}),
    '/dist': join(root, 'web', 'dist'),
    '/wasm': join(root, 'web', 'wasm'),
    // keys.worker.js imports the Worker and the wasm glue by these paths.
    '/web/dist': join(root, 'web', 'dist'),
    '/web/wasm': join(root, 'web', 'wasm'),
    '/keys.worker.js': join(here, 'keys.worker.js'),
    '/relay.html': join(here, 'relay.html'),
    '/relay-page.js': join(here, 'relay-page.js'),
  });
}

/** Opens relay.html from `pages` (relayPages()) in `page` and waits for its script. */
export async function openRelayPage(page, pages) {
  await page.goto(`${pages.base}/relay.html`);
  await page.waitForFunction(() => window.hushRelayReady === true);
}

/**
 * Opens the relay page in `page` and joins `room` on `relay` with a fresh token; resolves with
 * what `hushRelay.join` answers. `options`: `keys`, `secret`, `testWorker`, `unvouched`
 * (relay-page.js). With the key exchange the page joins in two steps: its identity key is
 * vouched for by the relay's `/dev/attest` (through `relayPages(relay)`).
 */
export async function joinRelay(page, { pages, relay, room }, options) {
  await openRelayPage(page, pages);
  const { token, participant } = await relay.dev(room);
  return page.evaluate((o) => window.hushRelay.join(o), { url: relay.ws, token, participant, room, ...options });
}

/**
 * A participant in its own context of the Chromium `browser`, joined as `joinRelay` does:
 * `call(fn, ...args)` calls `window.hushRelay[fn]`, `state()` its state.
 */
export async function participant(browser, where, name, options) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  watch(page, name);
  const joined = await joinRelay(page, where, options);
  const call = (fn, ...args) => page.evaluate(([f, a]) => window.hushRelay[f](...a), [fn, args]);
  return { name, page, ctx, joined, call, state: () => call('state') };
}

/**
 * Whether `state` (hushRelay.state()) shows media from participant `other` flowing: over 50
 * frames decrypted, over 20 video frames decoded, a video size, and audio samples.
 */
export function flowing(state, other) {
  const r = state.remote[other];
  return Boolean(r && r.ok > 50 && r.framesDecoded > 20 && r.videoWidth > 0 && r.audioSamples > 0);
}

/**
 * What a test reads off the demo page (web/demo), for `page.evaluate(demoState)`: the tiles
 * (participant, E2EE badge, video width, stats line), the members list, the safety code, the
 * recording badge and button, the session's grants, the status line. Serialized into the page,
 * so it uses nothing from here. Tests poll it with `until` (a function, never
 * `page.waitForFunction` with a string: Playwright evals that inside the page, which the relay's
 * CSP, no 'unsafe-eval', refuses).
 */
export const demoState = () => {
  const d = window.hushDemo;
  const text = (id) => document.getElementById(id)?.textContent;
  const badge = document.getElementById('recording');
  const button = document.getElementById('record');
  return {
    you: d?.session?.you, grants: d?.session?.grants, mode: d?.mode, closed: d?.closed, recording: d?.recording,
    safetyCode: text('safety-code'), status: text('status'), vouching: text('vouching'),
    link: document.getElementById('link')?.value,
    tiles: [...document.querySelectorAll('.tile')].map((t) => ({
      participant: t.dataset.participant, e2ee: t.dataset.e2ee ?? 'wait', badge: t.querySelector('.badge')?.textContent,
      videoWidth: t.querySelector('video')?.videoWidth ?? 0, stats: t.querySelector('.stats')?.textContent,
    })),
    members: [...document.querySelectorAll('#members li')].map((li) => ({ id: li.dataset.participant, status: li.dataset.status, text: li.textContent })),
    badge: badge ? { hidden: badge.hidden, active: badge.dataset.active, text: badge.textContent } : null,
    button: button ? { hidden: button.hidden, text: button.textContent } : null,
  };
};

/** Whether a demo page (`demoState`) shows a call of two: both tiles with video and green E2EE badges. */
export const demoInCall = (s) => s.tiles.length === 2 && s.tiles.every((t) => t.e2ee === 'ok' && t.videoWidth > 0);

/** `until` for a demo page: polls `demoState` on `page`. */
export const demoUntil = (page, pred, ms, step = 250) => until({ state: () => page.evaluate(demoState) }, pred, ms, step);

/** Polls `p.state()` until `pred(state)` holds or `ms` pass (counted in steps); returns the last state. */
export async function until(p, pred, ms, step = 250) {
  let s = await p.state();
  for (let waited = 0; !pred(s) && waited < ms; waited += step) {
    await sleep(step);
    s = await p.state();
  }
  return s;
}

/**
 * A test PKI in `dir` (openssl): a root CA, an intermediate and a leaf for `dns` names and `ips`
 * addresses, P-256. Returns the paths `ca` (root, PEM), `fullchain` (leaf then intermediate) and
 * `key` (the leaf's), and the root as `caPem`. Nothing trusts it until a test says so.
 */
export function testPki(dir, { dns = [], ips = [] }) {
  const at = (name) => join(dir, name);
  const openssl = (...args) => execFileSync('/usr/bin/openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=Hush test root CA ${process.pid}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  writeFileSync(at('ca.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n'
    + 'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  openssl('req', '-new', ...ec, '-keyout', 'int.key', '-out', 'int.csr', '-subj', `/CN=Hush test intermediate ${process.pid}`);
  openssl('x509', '-req', '-in', 'int.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ca.ext', '-out', 'int.pem');
  const names = [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)].join(',');
  writeFileSync(at('leaf.ext'), `subjectAltName=${names}\nbasicConstraints=critical,CA:FALSE\n`
    + 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  openssl('req', '-new', ...ec, '-keyout', 'privkey.pem', '-out', 'leaf.csr', '-subj', `/CN=${dns[0] ?? ips[0]}`);
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-CAcreateserial', '-days', '2', '-extfile', 'leaf.ext', '-out', 'leaf.pem');
  writeFileSync(at('fullchain.pem'), readFileSync(at('leaf.pem'), 'utf8') + readFileSync(at('int.pem'), 'utf8'));
  return { ca: at('ca.pem'), fullchain: at('fullchain.pem'), key: at('privkey.pem'), caPem: readFileSync(at('ca.pem'), 'utf8') };
}

/**
 * A headless Chromium (non-persistent) with HOME in `home`, whose NSS database
 * ($HOME/.pki/nssdb, Debian's `certutil`) trusts the root CA at `ca` (none: an empty
 * database). `args` are added to the usual flags.
 */
export async function launchBrowserTrusting(home, ca, args = []) {
  const nssdb = join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  execFileSync('/usr/bin/certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
  if (ca) execFileSync('/usr/bin/certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'hush-test-root', '-i', ca]);
  const { chromium } = require('playwright-core');
  return chromium.launch({ ...CHROMIUM, args: [...FLAGS, ...args], env: { ...process.env, HOME: home } });
}
