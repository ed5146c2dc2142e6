// Browsers through the relay: `hush-relay --dev` on 127.0.0.1, three headless Chromium
// contexts in one room, each publishing camera and microphone through the browser API and the
// relay client (web/dist). Alice and Bob key the room with the hush-keys exchange (or, while
// the Worker has none, explicit keys from one secret): each decodes the other's video and audio
// through the Worker (decrypted > 0, no drops) and, with the exchange, both show the same
// safety code. Mallory uses explicit keys from another secret: she decodes nothing of theirs
// and counts failures, and they cannot read her either. With the exchange, alice and bob join in
// two steps (the relay's dev backend vouches for their identity keys) and refuse mallory, whom
// nobody vouched for, as a member of the key exchange.
import { drops, flowing, launchBrowser, openRelayPage, participant, relayPages, sleep, startRelay, suite, until } from './harness.mjs';

const { check, use, run } = suite('relay tests');
const ROOM = 'relay-test';
const relay = use(await startRelay());
const pages = use(await relayPages(relay));
const browser = use(await launchBrowser());
const where = { pages, relay, room: ROOM };
const join = (name, keys, secret) => participant(browser, where, name, { keys, secret });

await run(async () => {
  const mode = 'exchange';
  const alice = await join('alice', 'exchange');
  // The Worker has had the key exchange for long: a Worker without it fails here, instead of
  // the checks below running in a weaker mode unnoticed.
  if (alice.joined.unsupported) throw new Error('this Worker has no key exchange');
  const bobJoining = Date.now();
  const bob = await join('bob', mode, 'the secret alice and bob share');
  check('alice and bob joined with distinct sender indexes',
    alice.joined.you && bob.joined.you && alice.joined.senderIndex !== bob.joined.senderIndex,
    { alice: alice.joined, bob: bob.joined });
  // Time from Bob's join to the first decoded video frame in both directions: Bob missed
  // Alice's first keyframe, so this measures the keyframe path (relay -> PLI -> publisher).
  let firstFrameMs = null;
  for (let waited = 0; waited < 10_000; waited += 100) {
    const [a, b] = [await alice.state(), await bob.state()];
    if ((a.remote[bob.joined.you]?.framesDecoded ?? 0) > 0 && (b.remote[alice.joined.you]?.framesDecoded ?? 0) > 0) {
      firstFrameMs = Date.now() - bobJoining;
      break;
    }
    await sleep(100);
  }
  check('first decoded video frame both ways within 10 s of bob joining', firstFrameMs !== null, { firstFrameMs });

  // Each decodes the other: the Worker decrypted frames, none dropped, video and audio flowing.
  let sa = await until(alice, (s) => flowing(s, bob.joined.you), 20_000);
  let sb = await until(bob, (s) => flowing(s, alice.joined.you), 10_000);
  const ab = sa.remote[bob.joined.you];
  const ba = sb.remote[alice.joined.you];
  check('alice decodes bob through the relay (decrypted, video and audio)', flowing(sa, bob.joined.you), ab);
  check('bob decodes alice through the relay (decrypted, video and audio)', flowing(sb, alice.joined.you), ba);
  check('no frame between alice and bob dropped, no decryptfailure events',
    ab && ba && drops(ab.dropped) === 0 && drops(ba.dropped) === 0 && sa.failureEvents === 0 && sb.failureEvents === 0,
    { alice: ab?.dropped, bob: ba?.dropped, events: [sa.failureEvents, sb.failureEvents] });
  // Keyframe requests reach the publisher: Alice's camera sender counts PLIs from the relay
  // and encoded more than the one keyframe it starts with.
  // Summed over the camera's simulcast encodings (one may be paused by the sender's estimate).
  const outVideo = (r) => r.rtp.filter((x) => x.out === 'video').reduce((sum, x) => ({
    out: 'video', mid: x.mid, packets: (sum.packets ?? 0) + (x.packets ?? 0), frames: (sum.frames ?? 0) + (x.frames ?? 0),
    pli: (sum.pli ?? 0) + (x.pli ?? 0), keyframes: (sum.keyframes ?? 0) + (x.keyframes ?? 0),
  }), {});
  const ra = outVideo(await alice.page.evaluate(() => window.hushRelay.rtp()));
  const rb = outVideo(await bob.page.evaluate(() => window.hushRelay.rtp()));
  check('keyframe requests reach both publishers (PLI received, keyframes encoded > 1)',
    ra.pli > 0 && ra.keyframes > 1 && rb.pli > 0 && rb.keyframes > 1, { alice: ra, bob: rb });
  await sleep(1500);
  const sa2 = await alice.state();
  check('alice keeps decoding (framesDecoded rising)',
    (sa2.remote[bob.joined.you]?.framesDecoded ?? 0) > (ab?.framesDecoded ?? 0), { before: ab?.framesDecoded, after: sa2.remote[bob.joined.you]?.framesDecoded });
  if (mode === 'exchange') {
    sa = await until(alice, (s) => s.safetyCode, 5000);
    sb = await until(bob, (s) => s.safetyCode === sa.safetyCode, 5000);
    check('alice and bob show the same safety code', sa.safetyCode && sa.safetyCode === sb.safetyCode,
      { alice: sa.safetyCode, bob: sb.safetyCode });
    check('alice and bob joined in two steps, vouched for by the relay\'s dev backend (/dev/attest)',
      alice.joined.vouched && bob.joined.vouched, { alice: alice.joined, bob: bob.joined });
    const refusedIn = (s) => s.keyEvents.filter((e) => e.type === 'memberRefused');
    check('neither refused the other', refusedIn(sa).length === 0 && refusedIn(sb).length === 0,
      { alice: refusedIn(sa), bob: refusedIn(sb) });
  } else {
    console.log('SKIP safety code: no key exchange in this Worker');
  }

  // A viewer that publishes nothing: its join says so (offers_first: false), the relay offers at
  // once and the viewer's answer takes the DTLS server role (a=setup:passive).
  const viewer = await participant(browser, where, 'viewer', { keys: mode, secret: 'the secret alice and bob share', listenOnly: true });
  const sv = await until(viewer, (s) => flowing(s, alice.joined.you) && flowing(s, bob.joined.you), 20_000);
  check('a viewer that publishes nothing decodes alice and bob (decrypted, video and audio)',
    flowing(sv, alice.joined.you) && flowing(sv, bob.joined.you) && sv.encrypted === 0, sv.remote);
  const vr = await viewer.page.evaluate(() => window.hushRelay.rtp());
  check('... answering the relay\'s offer as the DTLS server (a=setup:passive)', vr.setup === 'passive', vr);

  // Mallory: wrong keys. She receives their frames but can decrypt none.
  // The code after the viewer joined: the viewer's first one, once alice shows it too.
  const viewerCode = (await until(viewer, (s) => s.safetyCode, 5000)).safetyCode;
  const codeBeforeMallory = (await until(alice, (s) => s.safetyCode === viewerCode, 5000)).safetyCode;
  const mallory = await join('mallory', 'explicit', 'a different secret entirely');
  const sm = await until(mallory, (s) => {
    const a = s.remote[alice.joined.you];
    const b = s.remote[bob.joined.you];
    return a && b && drops(a.dropped) > 20 && drops(b.dropped) > 20;
  }, 15_000);
  const ma = sm.remote[alice.joined.you];
  const mb = sm.remote[bob.joined.you];
  check('mallory (wrong key) receives frames but decrypts and decodes none',
    ma && mb && ma.ok === 0 && mb.ok === 0 && ma.framesDecoded === 0 && mb.framesDecoded === 0 && ma.videoWidth === 0 && mb.videoWidth === 0,
    { alice: ma, bob: mb });
  check('mallory counts the failures and gets decryptfailure events',
    ma && mb && drops(ma.dropped) > 20 && drops(mb.dropped) > 20 && sm.failureEvents > 0,
    { alice: ma?.dropped, bob: mb?.dropped, events: sm.failureEvents });
  if (mode === 'exchange') {
    // Mallory announced an identity key nobody vouched for: to the key exchange she is a ghost.
    const refusal = (s) => s.keyEvents.find((e) => e.type === 'memberRefused' && e.participant === mallory.joined.you);
    const [ra2, rb2] = [await until(alice, refusal, 5000), await until(bob, refusal, 5000)];
    check('alice and bob refuse mallory in the key exchange (missing_attestation), code unchanged',
      refusal(ra2)?.reason === 'missing_attestation' && refusal(rb2)?.reason === 'missing_attestation'
        && ra2.safetyCode === codeBeforeMallory && rb2.safetyCode === codeBeforeMallory,
      { alice: refusal(ra2), bob: refusal(rb2), codes: [codeBeforeMallory, ra2.safetyCode, rb2.safetyCode] });
  }
  const sa3 = await until(alice, (s) => drops(s.remote[mallory.joined.you]?.dropped) > 20, 10_000);
  const am = sa3.remote[mallory.joined.you];
  check('alice cannot read mallory either', am && am.ok === 0 && am.framesDecoded === 0 && drops(am.dropped) > 20, am);
  check('alice still decodes bob after mallory joined',
    (sa3.remote[bob.joined.you]?.framesDecoded ?? 0) > (sa2.remote[bob.joined.you]?.framesDecoded ?? 0),
    sa3.remote[bob.joined.you]);
  for (const p of [alice, bob, viewer, mallory]) {
    const s = await p.state();
    check(`${p.name}: session still open, no unhandled relay messages`, s.closed === null && Object.keys(s.ignored).length === 0,
      { closed: s.closed, ignored: s.ignored, errors: s.errors });
  }

  // A refused join closes cleanly with the relay's code: a token for another room.
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await openRelayPage(page, pages);
  const other = await relay.token('another-room');
  const refused = await page.evaluate(async (o) => {
    try { await window.hushRelay.join(o); return 'joined'; } catch (e) { return e.code ?? String(e); }
  }, { url: relay.ws, token: other, room: ROOM, keys: 'explicit', secret: 'x' });
  check('a token for another room is refused with token_wrong_room', refused === 'token_wrong_room', { refused });
});
