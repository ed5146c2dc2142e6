// Browser tests in real headless Chromium: the RFC 9605 vectors through wasm, and E2EE calls
// between two peer connections through the Hush Worker (right key, wrong key).
// Run by `cargo xtask test` (after the wasm and TypeScript builds) as:
//   node tests/browser/run.mjs
// Serves the repository on 127.0.0.1 only, on a free port.
import { createServer } from 'node:http';
import { readFile, mkdtemp, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, normalize, extname, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const require = createRequire(join(root, 'web', 'package.json'));
const { chromium } = require('playwright-core');
const artifacts = join(root, 'tests', 'browser', 'artifacts');

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

function serve() {
  const server = createServer(async (req, res) => {
    const path = normalize(join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    if (!path.startsWith(root)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(path);
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch { res.writeHead(404).end(); }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--allow-loopback-in-peer-connection', '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];

let failures = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` ${JSON.stringify(detail)}` : ''}`);
  if (!ok) failures++;
}

const server = await serve();
const base = `http://127.0.0.1:${server.address().port}`;
const ctx = await chromium.launchPersistentContext(await mkdtemp(join(tmpdir(), 'hush-chromium-')), {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: FLAGS,
});
try {
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [page] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`  [page error] ${e.message}`));
  await page.goto(`${base}/tests/browser/e2ee.html`);
  await page.waitForFunction(() => window.hushReady === true);

  const v = await page.evaluate(() => window.hush.vectors());
  check('RFC 9605 vectors through wasm (289 header, 3 CTR+HMAC, 5 SFrame)',
    v.fail.length === 0 && v.headers === 289 && v.ctrHmac === 3 && v.sframe === 5, v.fail.length ? v : undefined);

  await mkdir(artifacts, { recursive: true });
  const running = page.evaluate(() => window.hush.call({ recvKey: 'same' }));
  await page.waitForTimeout(4500);
  await page.screenshot({ path: join(artifacts, 'decrypted-video.png') });
  const good = await running;
  const rxVideo = good.rx.find((t) => t.kind === 'video');
  const rxAudio = good.rx.find((t) => t.kind === 'audio');
  const drops = (t) => Object.values(t?.dropped ?? {}).reduce((a, b) => a + b, 0);
  check('call with the right key: video decoded', good.framesDecoded > 10 && good.videoWidth > 0,
    { framesDecoded: good.framesDecoded, videoWidth: good.videoWidth, codec: good.codec });
  check('call with the right key: worker decrypted video and audio, no failures',
    rxVideo?.ok > 10 && rxAudio?.ok > 10 && drops(rxVideo) === 0 && drops(rxAudio) === 0, good.rx);
  check('call with the right key: audio received without much concealment',
    good.audioSamples > 48000 && good.audioConcealed < good.audioSamples * 0.2,
    { samples: good.audioSamples, concealed: good.audioConcealed });

  const bad = await page.evaluate(() => window.hush.call({ recvKey: 'wrong', seconds: 4 }));
  const badVideo = bad.rx.find((t) => t.kind === 'video');
  check('call with the wrong key: nothing decoded', bad.framesDecoded === 0 && bad.videoWidth === 0,
    { framesDecoded: bad.framesDecoded, videoWidth: bad.videoWidth });
  check('call with the wrong key: failures counted as auth_failed',
    (badVideo?.dropped.auth_failed ?? 0) > 10 && badVideo.ok === 0, bad.rx);
} finally {
  await ctx.close();
  server.close();
}
if (failures) { console.log(`${failures} browser check(s) failed`); process.exit(1); }
console.log('browser tests: all passed');
