// Chromium and Firefox in one call through the relay (`hush-relay --dev` on 127.0.0.1): each
// publishes camera and microphone with the browser API and the relay client, keys come from
// the hush-keys exchange in each Worker, and each decodes the other's video and audio. The two
// browsers number their codecs differently (Firefox sends VP8 as 120, Chromium as 96), so this
// covers the relay's per-subscriber payload types and header-extension ids.
// A browser may hand the receive transform a byte-identical copy of a frame it already gave
// (Chromium re-assembles padding retransmissions); the Worker counts those as `duplicate`,
// which `drops()` leaves out. Anything else, `replayed` included, fails the test.
//   unshare --net sh -c 'ip link set lo up && node tests/browser/relay-firefox.test.mjs'
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { access, stat } from 'node:fs/promises';
import { checks, drops, launchBrowser, relayBinary, root, serve, startRelay, watch } from './harness.mjs';

const require = createRequire(join(root, 'web', 'package.json'));
const puppeteer = require('puppeteer-core');
const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
const { check, done } = checks('relay firefox tests');
try {
  await access(FIREFOX);
  await stat(relayBinary());
} catch {
  console.log(`FAIL ${FIREFOX} or ${relayBinary()} missing (apt-get install -y firefox-esr; cargo build -p hush-relay --bin hush-relay)`);
  process.exit(1);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ROOM = 'relay-firefox';

const relay = await startRelay();
const pages = await serve({
  '/dist': join(root, 'web', 'dist'),
  '/wasm': join(root, 'web', 'wasm'),
  '/relay.html': join(root, 'tests', 'browser', 'relay.html'),
  '/relay-page.js': join(root, 'tests', 'browser', 'relay-page.js'),
});
const base = `http://127.0.0.1:${pages.address().port}`;
const firefox = await puppeteer.launch({
  browser: 'firefox', executablePath: FIREFOX, headless: true, protocol: 'webDriverBiDi',
  extraPrefsFirefox: {
    'media.navigator.streams.fake': true,
    'media.navigator.permission.disabled': true,
    'media.peerconnection.ice.loopback': true,
    'permissions.default.camera': 1,
    'permissions.default.microphone': 1,
  },
});
const chromium = await launchBrowser();

async function join_(page, mode) {
  await page.goto(`${base}/relay.html`);
  await page.waitForFunction(() => window.hushRelayReady === true);
  const token = await relay.token(ROOM);
  return page.evaluate((o) => window.hushRelay.join(o),
    { url: relay.ws, token, room: ROOM, keys: mode, secret: 'the secret chromium and firefox share' });
}

try {
  const ch = await (await chromium.newContext()).newPage();
  watch(ch, 'chromium');
  const ff = await firefox.newPage();
  ff.on('console', (m) => { if (m.type() === 'error') console.log(`  [firefox] ${m.text()}`); });
  const jc = await join_(ch, 'exchange');
  const mode = jc.unsupported ? 'explicit' : 'exchange';
  const jf = await join_(ff, mode);
  check('chromium and firefox joined', jc.you && jf.you && jc.you !== jf.you, { chromium: jc, firefox: jf });

  const flowing = (r) => r && r.ok > 50 && r.framesDecoded > 20 && r.videoWidth > 0 && r.audioSamples > 0;
  let sc;
  let sf;
  for (let waited = 0; waited < 20_000; waited += 500) {
    [sc, sf] = [await ch.evaluate(() => window.hushRelay.state()), await ff.evaluate(() => window.hushRelay.state())];
    if (flowing(sc.remote[jf.you]) && flowing(sf.remote[jc.you])) break;
    await sleep(500);
  }
  const cf = sc.remote[jf.you];
  const fc = sf.remote[jc.you];
  check('chromium decodes firefox through the relay (decrypted, video and audio)', flowing(cf), cf);
  check('firefox decodes chromium through the relay (decrypted, video and audio)', flowing(fc), fc);
  check('no frame dropped between them (exact duplicates aside)',
    cf && fc && drops(cf.dropped) === 0 && drops(fc.dropped) === 0,
    { chromium: cf?.dropped, firefox: fc?.dropped });
  if (mode === 'exchange') {
    check('both show the same safety code', sc.safetyCode && sc.safetyCode === sf.safetyCode,
      { chromium: sc.safetyCode, firefox: sf.safetyCode });
  }
  check('both sessions still open, no errors', sc.closed === null && sf.closed === null && sf.errors.length === 0 && sc.errors.length === 0,
    { chromium: [sc.closed, sc.errors], firefox: [sf.closed, sf.errors] });
} catch (e) {
  check(`relay firefox test ran (${e.message})`, false);
  console.log(relay.log().slice(-4000));
} finally {
  await firefox.close();
  await chromium.close();
  pages.close();
  relay.stop();
}
done();
