// Browser tests in real headless Chromium: the RFC 9605 vectors through wasm and through the
// WebCrypto path, and E2EE calls between two peer connections through the Hush Worker: right
// key, wrong key, a key bound to another participant than the track carries, a tampered and a
// replayed frame (a step after the sender's encryption), a key rotation mid-call, each video
// codec, and the hybrid (wasm + WebCrypto) frame path.
// Run by `cargo xtask test` (after the wasm and TypeScript builds) as:
//   node tests/browser/run.mjs
// Serves the repository on 127.0.0.1 only, on a free port (harness.mjs).
import { artifact, openFromRoot, suite } from './harness.mjs';

const t = suite('browser tests');
const { check } = t;
await t.run(async () => {
  const page = await openFromRoot(t, '/tests/browser/e2ee.html');
  await page.waitForFunction(() => window.hushReady === true);

  const v = await page.evaluate(() => window.hush.vectors());
  check('RFC 9605 vectors through wasm (289 header, 3 CTR+HMAC, 5 SFrame)',
    v.fail.length === 0 && v.headers === 289 && v.ctrHmac === 3 && v.sframe === 5, v.fail.length ? v : undefined);

  const running = page.evaluate(() => window.hush.call({ recvKey: 'same' }));
  await page.waitForTimeout(4500);
  await page.screenshot({ path: await artifact('decrypted-video.png') });
  const good = await running;
  const rxVideo = good.rx.find((t) => t.kind === 'video');
  const rxAudio = good.rx.find((t) => t.kind === 'audio');
  // Every drop of a transform's stats, duplicates included (harness.mjs `drops` leaves them out).
  const total = (t) => Object.values(t?.dropped ?? {}).reduce((a, b) => a + b, 0);
  check('call with the right key: video decoded', good.framesDecoded > 10 && good.videoWidth > 0,
    { framesDecoded: good.framesDecoded, videoWidth: good.videoWidth, codec: good.codec });
  check('call with the right key: worker decrypted video and audio, no failures',
    rxVideo?.ok > 10 && rxAudio?.ok > 10 && total(rxVideo) === (rxVideo.dropped.duplicate ?? 0) && total(rxAudio) === 0, good.rx);
  check('call with the right key: audio received without much concealment',
    good.audioSamples > 48000 && good.audioConcealed < good.audioSamples * 0.2,
    { samples: good.audioSamples, concealed: good.audioConcealed });

  const bad = await page.evaluate(() => window.hush.call({ recvKey: 'wrong', seconds: 4 }));
  const badVideo = bad.rx.find((t) => t.kind === 'video');
  check('call with the wrong key: nothing decoded', bad.framesDecoded === 0 && bad.videoWidth === 0,
    { framesDecoded: bad.framesDecoded, videoWidth: bad.videoWidth });
  check('call with the wrong key: failures counted as auth_failed',
    (badVideo?.dropped.auth_failed ?? 0) > 10 && badVideo.ok === 0, bad.rx);

  // The receiver's key is bound to another participant (pc0) than the one its tracks are
  // attached for (pc1): a relay showing pc0's media as pc1's. Nothing opens; every frame is
  // counted as wrong_sender and reported.
  const ws = await page.evaluate(() => window.hush.call({ recvOwner: 'pc0', seconds: 3 }));
  const wsVideo = ws.rx.find((t) => t.kind === 'video');
  const wsAudio = ws.rx.find((t) => t.kind === 'audio');
  check('another participant\'s key: nothing decoded, every frame dropped as wrong_sender, events name the track\'s participant',
    ws.framesDecoded === 0 && [wsVideo, wsAudio].every((t) => t?.ok === 0 && t.frames > 10 && t.dropped.wrong_sender === t.frames)
      && ws.events.some((e) => e.reason === 'wrong_sender' && e.participant === 'pc1' && e.total === 1),
    { framesDecoded: ws.framesDecoded, rx: ws.rx, events: ws.events.slice(0, 4) });

  const hv = await page.evaluate(() => window.hush.hostVectors());
  check('RFC 9605 vectors through WebCrypto (suites 4, 5: seal and planOpen/commit), host == wasm for every layout',
    hv.fail.length === 0 && hv.sealed === 2 && hv.opened === 2 && hv.frames === 24, hv);

  const byKind = (r, side, kind) => r[side].find((t) => t.kind === kind);
  // Chromium's video receive pipeline sometimes hands the transform the same assembled frame
  // more than once (measured: the sender sealed each (KID, CTR) once; the receiver got 2 to 6
  // byte-identical copies of one early delta frame, same RTP timestamp, within 20 ms, in about
  // 1 call in 5, with RTX packets received but no NACK sent: bandwidth probing resending a
  // packet as padding is the likely cause). The opener counts a byte-identical copy of a frame
  // it decrypted as `duplicate`; anything else under a seen counter is `replayed`.
  // `clean`: no drop but duplicates, and every frame the sender encrypted was decrypted.
  const clean = (rx, tx) => total(rx) === (rx.dropped.duplicate ?? 0) && rx.ok >= tx.ok - 3;
  // Tampered: every video frame gets one byte flipped after encryption.
  const tam = await page.evaluate(() => window.hush.call({ middle: 'tamper', seconds: 4 }));
  const tv = byKind(tam, 'rx', 'video');
  const ta = byKind(tam, 'rx', 'audio');
  check('tampered frames: dropped as auth_failed, nothing rendered, audio untouched',
    tam.middleChanged > 10 && (tv?.dropped.auth_failed ?? 0) > 10 && tv.ok === 0 && total(tv) === tv.dropped.auth_failed
      && tam.framesDecoded === 0 && tam.videoWidth === 0 && ta?.ok > 10 && total(ta) === 0,
    { changed: tam.middleChanged, framesDecoded: tam.framesDecoded, video: tv, audio: ta });
  const tev = tam.events.filter((e) => e.reason === 'auth_failed' && e.id === 'pc2-video');
  check('tampered frames: decryptFailure events, rate-limited, with participant and totals',
    tev.length >= 1 && tev.length <= 6 && tev[0].participant === 'pc1' && tev[0].total === 1
      && tev.every((e, i) => i === 0 || e.total > tev[i - 1].total),
    tev);

  // Replayed: every 10th audio frame is replaced by its predecessor, already delivered: an
  // exact copy, dropped and counted as a duplicate.
  const rep = await page.evaluate(() => window.hush.call({ middle: 'replay', seconds: 4 }));
  const ra = byKind(rep, 'rx', 'audio');
  const rv = byKind(rep, 'rx', 'video');
  check('replayed exact copies: dropped as duplicate, none as replayed, the rest decrypted, video untouched',
    rep.middleChanged > 5 && (ra?.dropped.duplicate ?? 0) >= rep.middleChanged - 2 && (ra?.dropped.duplicate ?? 0) <= rep.middleChanged
      && total(ra) === ra.dropped.duplicate && ra.ok > 50 && rv?.ok > 10 && clean(rv, byKind(rep, 'tx', 'video')) && rep.framesDecoded > 10
      && !rep.events.some((e) => e.reason === 'duplicate'),
    { changed: rep.middleChanged, audio: ra, video: rv });
  // Replayed and altered: the same, with the copy's last byte (in the tag) flipped: not a
  // copy of a decrypted frame, so `replayed` (the counter is refused before the tag is checked).
  const alt = await page.evaluate(() => window.hush.call({ middle: 'replayAltered', seconds: 4 }));
  const aa = byKind(alt, 'rx', 'audio');
  check('replayed altered frames: dropped as replayed, not as duplicate',
    alt.middleChanged > 5 && (aa?.dropped.replayed ?? 0) >= alt.middleChanged - 2 && (aa?.dropped.replayed ?? 0) <= alt.middleChanged
      && total(aa) === aa.dropped.replayed && aa.ok > 50 && alt.framesDecoded > 10,
    { changed: alt.middleChanged, audio: aa });
  // Replayed video through the WebCrypto path: every 10th video frame is replaced by its
  // predecessor (exact copies), all above the threshold.
  const vrep = await page.evaluate(() => window.hush.call({ middle: 'replayVideo', seconds: 4 }));
  const vr = byKind(vrep, 'rx', 'video');
  check('replayed video copies (WebCrypto path): dropped as duplicate, the rest decrypted',
    vrep.middleChanged > 3 && (vr?.dropped.duplicate ?? 0) >= vrep.middleChanged - 2 && (vr?.dropped.duplicate ?? 0) <= vrep.middleChanged + 6
      && total(vr) === vr.dropped.duplicate && vr.host > 10 && vr.ok > 10,
    { changed: vrep.middleChanged, video: vr });

  // Rotation: the sender moves to KID 2 at 2 s; the receiver holds KIDs 1 and 2, then drops 1.
  const rot = await page.evaluate(() => window.hush.call({ rotateAt: 2000, seconds: 6 }));
  const rov = byKind(rot, 'rx', 'video');
  const before = rot.afterRotate?.find((t) => t.kind === 'video');
  check('rotation mid-call: longest gap between rendered frames < 500 ms, no drops',
    rot.maxGapMs < 500 && rot.renderedFrames > 40 && total(rov) === (rov.dropped.duplicate ?? 0) && total(byKind(rot, 'rx', 'audio')) === 0,
    { maxGapMs: rot.maxGapMs, gapFromRotationMs: rot.gapFromRotationMs, rendered: rot.renderedFrames, video: rov });
  check('rotation mid-call: KID 1 removed after the switch costs nothing (frames are under KID 2)',
    rov.ok > before.ok + 20 && total(rov) === (rov.dropped.duplicate ?? 0), { before, after: rov });

  // Every codec with E2EE. Chromium's receive pipeline sometimes hands the same frame to the
  // transform twice (seen with AV1 and, rarely, VP8 on a loaded machine; also without E2EE):
  // the replay window drops the copy, so `replayed` drops are allowed when every frame the
  // sender encrypted was decrypted once.
  for (const codec of ['video/VP8', 'video/VP9', 'video/H264', 'video/AV1']) {
    const c = await page.evaluate((codec) => window.hush.call({ codec, seconds: 4 }), codec);
    const cv = byKind(c, 'rx', 'video');
    const ok = c.codec?.toLowerCase() === codec.toLowerCase() && c.framesDecoded > 10 && c.videoWidth > 0 && cv?.ok > 10
      && clean(cv, byKind(c, 'tx', 'video')) && c.tx.every((t) => total(t) === 0) && total(byKind(c, 'rx', 'audio')) === 0;
    const detail = { codec: c.codec, framesDecoded: c.framesDecoded, videoWidth: c.videoWidth, rx: c.rx, tx: c.tx };
    // AV1: Chromium's depacketizer drops temporal delimiters and rewrites OBU size fields;
    // hush-frame's AV1 framing and canonical metadata (crates/hush-frame/src/codec/av1.rs)
    // are what let these frames through.
    check(`codec ${codec}: negotiated, decoded, no worker failures`, ok, detail);
  }

  // Hybrid: video frames (most above the threshold) through WebCrypto, audio through wasm.
  const hy = await page.evaluate(() => window.hush.call({ seconds: 4 }));
  const hvid = byKind(hy, 'rx', 'video');
  const haud = byKind(hy, 'rx', 'audio');
  const tvid = byKind(hy, 'tx', 'video');
  check('hybrid path: video through WebCrypto, audio through wasm, all decoded, 0 failures',
    hvid.host > 10 && tvid.host > 10 && haud.host === 0 && haud.ok > 50 && hvid.ok > 10 && hy.framesDecoded > 10
      && clean(hvid, tvid) && total(haud) === 0 && hy.tx.every((t) => total(t) === 0),
    { video: hvid, audio: haud, txVideo: tvid, framesDecoded: hy.framesDecoded });
  const wasmOnly = await page.evaluate(() => window.hush.call({ seconds: 3, worker: { hostAead: false } }));
  check('hostAead: false keeps every frame in wasm and still decodes',
    wasmOnly.rx.concat(wasmOnly.tx).every((t) => t.host === 0) && clean(byKind(wasmOnly, 'rx', 'video'), byKind(wasmOnly, 'tx', 'video'))
      && total(byKind(wasmOnly, 'rx', 'audio')) === 0 && wasmOnly.framesDecoded > 10,
    wasmOnly.rx);
});
