// The npm package `hush-e2ee`, as packed by `npm pack` and installed from the tarball
// (tests/browser/pkg.prepare.mjs builds the scratch app): a two-peer-connection E2EE call in
// headless Chromium through the Vite-built app, and through a plain `<script type="module">`
// page that imports the installed package's files directly, on both transform paths
// (RTCRtpScriptTransform and the legacy createEncodedStreams); a wrong key decodes nothing.
import { join } from 'node:path';
import { artifacts, drops, launch, needFiles, root, serve, suite, watch } from './harness.mjs';

const app = join(artifacts, 'pkg-app');
const { check, use, run } = suite('pkg tests');
await needFiles([join(app, 'dist', 'index.html')], 'run node tests/browser/pkg.prepare.mjs');

const PLAIN = `<!doctype html>
<meta charset="utf-8">
<title>hush-e2ee from a plain module script</title>
<script type="module">
import { HushE2ee } from '/node_modules/hush-e2ee/dist/api/index.js';
import { call, beforeInit, pruned } from '/pkg-call.js';
window.hushPkg = { call: (o) => call(HushE2ee, o), beforeInit: () => beforeInit(HushE2ee), pruned: () => pruned(HushE2ee) };
window.hushPkgReady = true;
</script>
`;

const server = use(await serve({
  '/': join(app, 'dist'),
  '/node_modules/hush-e2ee': join(app, 'node_modules', 'hush-e2ee'),
  '/pkg-call.js': join(root, 'tests', 'browser', 'pkg-call.js'),
  '/plain.html': async () => ({ type: 'text/html', body: PLAIN }),
}));
const base = server.base;
const ctx = use(await launch());

/** Runs one call and checks it. */
async function expectCall(page, label, options) {
  const r = await page.evaluate((o) => window.hushPkg.call(o), options);
  const { decrypted, dropped, framesDecoded, framesDecodedEarlier, videoWidth, encrypted } = r;
  if (!options.wrongKey) {
    check(`${label}: video decoded (framesDecoded rising, videoWidth > 0)`,
      framesDecoded > 20 && framesDecoded > framesDecodedEarlier && videoWidth > 0,
      { framesDecoded, framesDecodedEarlier, videoWidth });
    check(`${label}: Worker decrypted frames, no failures`,
      decrypted > 50 && drops(dropped) === 0 && r.failureEvents === 0 && encrypted > 50,
      { decrypted, dropped, encrypted, failureEvents: r.failureEvents });
    check(`${label}: transform path`, r.legacy === (options.legacy === true), { legacy: r.legacy });
    check(`${label}: stats give a bitrate`, r.bitrate > 10_000, { bitrate: r.bitrate });
  } else {
    check(`${label}: nothing decoded`, framesDecoded === 0 && videoWidth === 0 && decrypted === 0,
      { framesDecoded, videoWidth, decrypted });
    check(`${label}: failures counted as auth_failed, decryptfailure events fired`,
      (dropped.auth_failed ?? 0) > 20 && r.failureEvents > 0 && r.firstFailure?.participant === 'alice'
        && r.firstFailure?.reason === 'auth_failed',
      { dropped, failureEvents: r.failureEvents, first: r.firstFailure });
  }
}

await run(async () => {
  const vite = await ctx.newPage();
  watch(vite, 'vite app');
  await vite.goto(`${base}/`);
  await vite.waitForFunction(() => window.hushPkgReady === true, null, { timeout: 10_000 });
  check('vite app: use before init throws not_initialized',
    (await vite.evaluate(() => window.hushPkg.beforeInit())) === 'HushError:not_initialized');
  await expectCall(vite, 'vite app, right key', {});
  await expectCall(vite, 'vite app, wrong key', { wrongKey: true, seconds: 3 });

  const plain = await ctx.newPage();
  watch(plain, 'plain page');
  await plain.goto(`${base}/plain.html`);
  await plain.waitForFunction(() => window.hushPkgReady === true, null, { timeout: 10_000 });
  const pr = await plain.evaluate(() => window.hushPkg.pruned());
  check('plain module page: getStats asks 10 live receivers for RTP stats, and none once their transceivers stopped',
    pr.live === 10 && pr.afterStop === 0, pr);
  await expectCall(plain, 'plain module page, RTCRtpScriptTransform', {});
  await expectCall(plain, 'plain module page, legacy createEncodedStreams', { legacy: true });
  await expectCall(plain, 'plain module page, legacy path, wrong key', { legacy: true, wrongKey: true, seconds: 3 });
});
