// Chromium and Firefox in one call through the relay (`hush-relay --dev` on 127.0.0.1): each
// publishes camera and microphone with the browser API and the relay client, keys come from
// the hush-keys exchange in each Worker, and each decodes the other's video and audio. The two
// browsers number their codecs differently (Firefox sends VP8 as 120, Chromium as 96), so this
// covers the relay's per-subscriber payload types and header-extension ids.
// A browser may hand the receive transform a byte-identical copy of a frame it already gave
// (Chromium re-assembles padding retransmissions); the Worker counts those as `duplicate`,
// which `drops()` leaves out. Anything else, `replayed` included, fails the test.
//   unshare --net sh -c 'ip link set lo up && node tests/browser/relay-firefox.test.mjs'
import { FIREFOX, drops, flowing, joinRelay, launchBrowser, launchFirefox, needFiles, relayPages, sleep, startRelay, suite, watch } from './harness.mjs';

const { check, use, run } = suite('relay firefox tests');
await needFiles([FIREFOX], 'apt-get install -y firefox-esr (cargo xtask test does)');
const relay = use(await startRelay());
const pages = use(await relayPages(relay));
const firefox = use(await launchFirefox());
const chromium = use(await launchBrowser());
const where = { pages, relay, room: 'relay-firefox' };
const join = (page, keys) => joinRelay(page, where, { keys, secret: 'the secret chromium and firefox share' });

await run(async () => {
  const ch = await (await chromium.newContext()).newPage();
  watch(ch, 'chromium');
  const ff = await firefox.newPage();
  watch(ff, 'firefox');
  const jc = await join(ch, 'exchange');
  if (jc.unsupported) throw new Error('this Worker has no key exchange');
  const mode = 'exchange';
  const jf = await join(ff, mode);
  check('chromium and firefox joined', jc.you && jf.you && jc.you !== jf.you, { chromium: jc, firefox: jf });

  let sc;
  let sf;
  for (let waited = 0; waited < 20_000; waited += 500) {
    [sc, sf] = [await ch.evaluate(() => window.hushRelay.state()), await ff.evaluate(() => window.hushRelay.state())];
    if (flowing(sc, jf.you) && flowing(sf, jc.you)) break;
    await sleep(500);
  }
  const cf = sc.remote[jf.you];
  const fc = sf.remote[jc.you];
  check('chromium decodes firefox through the relay (decrypted, video and audio)', flowing(sc, jf.you), cf);
  check('firefox decodes chromium through the relay (decrypted, video and audio)', flowing(sf, jc.you), fc);
  check('no frame dropped between them (exact duplicates aside)',
    cf && fc && drops(cf.dropped) === 0 && drops(fc.dropped) === 0,
    { chromium: cf?.dropped, firefox: fc?.dropped });
  if (mode === 'exchange') {
    check('both show the same safety code', sc.safetyCode && sc.safetyCode === sf.safetyCode,
      { chromium: sc.safetyCode, firefox: sf.safetyCode });
  }
  // A Firefox viewer that publishes nothing: the relay offers first, and the viewer answers as
  // the DTLS server (a=setup:passive) if Firefox takes that role, else keeps its own.
  const fv = await firefox.newPage();
  watch(fv, 'firefox viewer');
  const jv = await joinRelay(fv, where, { keys: mode, secret: 'the secret chromium and firefox share', listenOnly: true });
  let sv;
  for (let waited = 0; waited < 20_000; waited += 500) {
    sv = await fv.evaluate(() => window.hushRelay.state());
    if (flowing(sv, jc.you) && flowing(sv, jf.you)) break;
    await sleep(500);
  }
  const vr = await fv.evaluate(() => window.hushRelay.rtp());
  console.log(`firefox viewer: a=setup:${vr.setup}`);
  check('a firefox viewer that publishes nothing decodes both', flowing(sv, jc.you) && flowing(sv, jf.you) && sv.closed === null,
    { viewer: jv, remote: sv.remote, setup: vr.setup, closed: sv.closed });
  check('both sessions still open, no errors', sc.closed === null && sf.closed === null && sf.errors.length === 0 && sc.errors.length === 0,
    { chromium: [sc.closed, sc.errors], firefox: [sf.closed, sf.errors] });
});
