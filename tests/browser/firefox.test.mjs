// Firefox ESR (Debian `firefox-esr`, driven by puppeteer-core over WebDriver BiDi): the E2EE
// two-peer-connection call inside Firefox, and one call between Chromium and Firefox (each
// page served from 127.0.0.1, the SDP carried by this script), decoded both ways with the
// Hush Worker on each side; and a wrong key in Firefox decodes nothing. A browser may hand the
// receive transform the same video frame twice: the opener drops the copy as `duplicate`,
// which `drops` (harness.mjs) leaves out; any other drop, `replayed` included, fails.
//   unshare --net sh -c 'ip link set lo up && node tests/browser/firefox.test.mjs'
import { FIREFOX, drops, launch, launchFirefox, needFiles, root, serve, sleep, suite, watch } from './harness.mjs';

const { check, use, run } = suite('firefox tests');
await needFiles([FIREFOX], 'apt-get install -y firefox-esr (cargo xtask test does)');
const server = use(await serve({ '/': root }));
const url = `${server.base}/tests/browser/e2ee.html`;
const firefox = use(await launchFirefox());
const chromium = use(await launch());
const byKind = (stats, side, kind) => stats.find((t) => t.side === side && t.kind === kind);
await run(async () => {
  const ff = await firefox.newPage();
  watch(ff, 'firefox');
  await ff.goto(url);
  await ff.waitForFunction(() => window.hushReady === true);
  const version = await firefox.version();

  const good = await ff.evaluate(() => window.hush.call({ seconds: 5 }));
  const rv = good.rx.find((t) => t.kind === 'video');
  const ra = good.rx.find((t) => t.kind === 'audio');
  check(`${version}: two-peer E2EE call decodes video, worker decrypted video and audio, 0 failures`,
    good.framesDecoded > 10 && good.videoWidth > 0 && rv?.ok > 10 && ra?.ok > 10 && drops(rv.dropped) === 0 && drops(ra.dropped) === 0,
    { framesDecoded: good.framesDecoded, videoWidth: good.videoWidth, rx: good.rx });
  const bad = await ff.evaluate(() => window.hush.call({ recvKey: 'wrong', seconds: 4 }));
  const bv = bad.rx.find((t) => t.kind === 'video');
  check(`${version}: wrong key decodes nothing, failures counted as auth_failed`,
    bad.framesDecoded === 0 && bad.videoWidth === 0 && (bv?.dropped.auth_failed ?? 0) > 10 && bv.ok === 0,
    { framesDecoded: bad.framesDecoded, rx: bad.rx });

  // Chromium offers, Firefox answers; each sends under its own KID.
  const ch = await chromium.newPage();
  watch(ch, 'chromium');
  await ch.goto(url);
  await ch.waitForFunction(() => window.hushReady === true);
  await ch.evaluate(() => window.hush.peer({ sendKid: 1, recvKid: 2 }));
  await ff.evaluate(() => window.hush.peer({ sendKid: 2, recvKid: 1 }));
  const offer = await ch.evaluate(() => window.hush.offer());
  const answer = await ff.evaluate((sdp) => window.hush.answer(sdp), offer);
  await ch.evaluate((sdp) => window.hush.accept(sdp), answer);
  await sleep(6000);
  const c = await ch.evaluate(() => window.hush.result());
  const f = await ff.evaluate(() => window.hush.result());
  for (const [name, r] of [['Chromium receives from Firefox', c], ['Firefox receives from Chromium', f]]) {
    const v = byKind(r.stats, 'recv', 'video');
    const a = byKind(r.stats, 'recv', 'audio');
    check(`${name}: video decoded, worker decrypted video and audio, 0 failures`,
      r.framesDecoded > 10 && r.videoWidth > 0 && v?.ok > 10 && a?.ok > 10 && drops(v?.dropped) === 0 && drops(a?.dropped) === 0,
      { framesDecoded: r.framesDecoded, videoWidth: r.videoWidth, stats: r.stats });
  }
});
