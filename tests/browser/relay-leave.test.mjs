// A leave moves the room to a new epoch that the leaver cannot open, in real browsers through
// the relay: `hush-relay --dev` on 127.0.0.1, three headless Chromium contexts (alice, bob,
// carol) in one room with the hush-keys exchange in each page's Worker. Each page runs
// tests/browser/keys.worker.js: the real Worker (web/dist/worker.js) plus test-only messages
// that seal and open one frame with the key ring's current keys, so the runner can carry a
// frame sealed by bob to another member's Worker.
//
// After carol leaves (the relay client's clean `leave`):
//   (a) alice and bob switch to a higher epoch within a few seconds, both to the same one, and
//       their safety code changes (and stays equal between them);
//   (b) they keep decoding each other with no drop and no decryptfailure event, also after the
//       10 s grace period, when the old epoch's keys are gone (a frame of the old epoch no
//       longer opens: so what they decode is the new epoch);
//   (c) carol's Worker got no key event for the new epoch, and a frame bob seals on it does not
//       open there (unknown_kid), while it opens at alice; even after carol ratchets her last
//       secret forward (a made-up join, what a leaver can compute alone) the KID matches and
//       the key does not (auth_failed): the leave drew a fresh secret instead of ratcheting.
// Before the leave, the same frame path opens at carol: the checks are not vacuous.
import { drops, flowing, launchBrowser, participant, relayPages, sleep, startRelay, suite, until } from './harness.mjs';

const { check, use, run } = suite('relay leave tests');
/** The key ring context bob's test frames use: screen, which no real transform sends on here. */
const SCREEN = 2;
/** hush-keys' receive grace period for an old epoch (DESIGN.md section 3), plus margin. */
const GRACE_MS = 10_000 + 1500;

const relay = use(await startRelay());
const pages = use(await relayPages(relay));
const browser = use(await launchBrowser());
const where = { pages, relay, room: 'relay-leave-test' };
const join = (name, extra = {}) => participant(browser, where, name, { keys: 'exchange', testWorker: true, ...extra });

const lastOf = (s, type, since = 0) => [...s.keyEvents].reverse().find((e) => e.type === type && e.t >= since);

await run(async () => {
  const alice = await join('alice');
  if (alice.joined.unsupported) throw new Error('this Worker has no key exchange: the leave scenario needs it');
  const bob = await join('bob');
  // Carol is vouched for like the others, but her own Worker admits anyone: she computes the
  // ratchet below from a member she makes up, which a Worker checking attestations refuses.
  const carol = await join('carol', { admitAnyone: true });
  const [A, B, C] = [alice.joined.you, bob.joined.you, carol.joined.you];
  check('alice, bob and carol joined with distinct sender indexes',
    new Set([alice.joined.senderIndex, bob.joined.senderIndex, carol.joined.senderIndex]).size === 3,
    [alice.joined, bob.joined, carol.joined]);

  // All three in the call: each decodes the other two, and all show one safety code.
  let sa = await until(alice, (s) => flowing(s, B) && flowing(s, C), 25_000);
  let sb = await until(bob, (s) => flowing(s, A) && flowing(s, C), 10_000);
  let sc = await until(carol, (s) => flowing(s, A) && flowing(s, B), 10_000);
  check('before the leave all three decode each other',
    flowing(sa, B) && flowing(sa, C) && flowing(sb, A) && flowing(sb, C) && flowing(sc, A) && flowing(sc, B),
    { alice: sa.remote, bob: sb.remote, carol: sc.remote });
  sa = await until(alice, (s) => s.safetyCode && lastOf(s, 'switched'), 5000);
  sb = await until(bob, (s) => s.safetyCode === sa.safetyCode, 5000);
  sc = await until(carol, (s) => s.safetyCode === sa.safetyCode && lastOf(s, 'switched')?.epoch === lastOf(sa, 'switched')?.epoch, 5000);
  const e0 = lastOf(sa, 'switched')?.epoch;
  const code0 = sa.safetyCode;
  check('before the leave: one safety code and one sending epoch for all three',
    code0 && sb.safetyCode === code0 && sc.safetyCode === code0 && e0 > 0
      && lastOf(sb, 'switched')?.epoch === e0 && lastOf(sc, 'switched')?.epoch === e0,
    { codes: [sa.safetyCode, sb.safetyCode, sc.safetyCode], epochs: [sa, sb, sc].map((s) => lastOf(s, 'switched')?.epoch) });

  // The frame path works before the leave: bob seals on the epoch all three hold, carol opens.
  await bob.call('testStream', SCREEN);
  const old = await bob.call('testSeal', SCREEN, 'bob before the leave');
  const carolOld = await carol.call('testOpen', old.frame);
  const aliceOld = await alice.call('testOpen', old.frame);
  check('before the leave a frame bob seals opens at carol and at alice (the probe works)',
    old.frame && old.epoch === e0 % 256 && carolOld.text === 'bob before the leave' && aliceOld.text === 'bob before the leave',
    { sealed: { epoch: old.epoch, reason: old.reason }, carol: carolOld, alice: aliceOld });

  // Carol leaves; her Worker and its key session stay as they are (what a leaver keeps).
  const before = {
    alice: { ok: sa.remote[B]?.ok ?? 0, decoded: sa.remote[B]?.framesDecoded ?? 0, dropped: { ...sa.remote[B]?.dropped } },
    bob: { ok: sb.remote[A]?.ok ?? 0, decoded: sb.remote[A]?.framesDecoded ?? 0, dropped: { ...sb.remote[A]?.dropped } },
  };
  const carolEventsBefore = sc.keyEvents.length;
  const leftAt = await carol.page.evaluate(() => { const t = Date.now(); window.hushRelay.leave({ keepWorker: true }); return t; });

  // (a) A new epoch for alice and bob, quickly, and a new safety code.
  const switchedAfter = (s) => { const e = lastOf(s, 'switched', leftAt); return e && e.epoch > e0 ? e : undefined; };
  sa = await until(alice, (s) => switchedAfter(s) && s.safetyCode !== code0, 10_000, 100);
  sb = await until(bob, (s) => switchedAfter(s) && s.safetyCode !== code0, 5_000, 100);
  const [swA, swB] = [switchedAfter(sa), switchedAfter(sb)];
  const e1 = swA?.epoch;
  const figures = { e0, e1, aliceSwitchMs: swA ? swA.t - leftAt : null, bobSwitchMs: swB ? swB.t - leftAt : null };
  check('(a) alice and bob switch to the same higher epoch within 5 s of carol leaving',
    swA && swB && swA.epoch === swB.epoch && e1 > e0 && swA.t - leftAt < 5000 && swB.t - leftAt < 5000, figures);
  check('(a) their safety code changes and stays equal between them',
    sa.safetyCode && sa.safetyCode !== code0 && sa.safetyCode === sb.safetyCode,
    { before: code0, alice: sa.safetyCode, bob: sb.safetyCode });
  check('(a) the new epoch was installed before it was sent on (receive keys first)',
    [sa, sb].every((s) => { const i = lastOf(s, 'installed', leftAt); return i && i.epoch === e1 && i.t <= lastOf(s, 'switched', leftAt).t; }),
    { alice: sa.keyEvents.filter((e) => e.t >= leftAt), bob: sb.keyEvents.filter((e) => e.t >= leftAt) });

  // (b) Still decoding each other on the new epoch: first right after the switch, then past
  // the grace period, when epoch e0's keys are retired.
  const switchedAt = Math.max(swA?.t ?? 0, swB?.t ?? 0);
  await sleep(2000);
  const sa1 = await alice.state();
  const sb1 = await bob.state();
  const waitMore = Math.max(0, switchedAt + GRACE_MS - Date.now());
  await sleep(waitMore);
  const oldAtAlice = await alice.call('testOpen', old.frame);
  const sa2 = await alice.state();
  await sleep(2000);
  const sa3 = await alice.state();
  const sb3 = await bob.state();
  const ab = sa3.remote[B];
  const ba = sb3.remote[A];
  figures.aliceDecryptedAfterLeave = (ab?.ok ?? 0) - before.alice.ok;
  figures.bobDecryptedAfterLeave = (ba?.ok ?? 0) - before.bob.ok;
  figures.aliceDecryptedPastGrace = (ab?.ok ?? 0) - (sa2.remote[B]?.ok ?? 0);
  figures.bobVideoFramesAfterLeave = (ba?.framesDecoded ?? 0) - before.bob.decoded;
  check('(b) alice decodes bob after the switch (decrypted and video frames rising)',
    sa1.remote[B]?.ok > before.alice.ok && ab?.ok > sa1.remote[B]?.ok && ab?.framesDecoded > sa1.remote[B]?.framesDecoded,
    { before: before.alice, afterSwitch: sa1.remote[B], later: ab });
  check('(b) bob decodes alice after the switch (decrypted and video frames rising)',
    sb1.remote[A]?.ok > before.bob.ok && ba?.ok > sb1.remote[A]?.ok && ba?.framesDecoded > sb1.remote[A]?.framesDecoded,
    { before: before.bob, afterSwitch: sb1.remote[A], later: ba });
  check('(b) past the grace period epoch e0 no longer opens at alice, and she still decrypts bob',
    oldAtAlice.reason === 'unknown_kid' && figures.aliceDecryptedPastGrace > 20 && ab?.framesDecoded > (sa2.remote[B]?.framesDecoded ?? 0),
    { oldFrame: oldAtAlice, decrypted: figures.aliceDecryptedPastGrace });
  // Frames carol sent just before she left may reach a member after her keys went: a
  // decryptfailure for carol's track is expected then, never one for alice's or bob's.
  // Counted from the leave on: at a join, the first frames a member gets can be under the
  // epoch before its join, which it never holds (the ratchet keeps the past from newcomers),
  // until the sender switches; those `unknown_kid` drops belong to the join, not to the leave.
  const between = (s) => s.failures.filter((f) => f.participant !== C && f.t >= leftAt);
  const since = (now, then) => drops(now) - drops(then);
  figures.dropsBeforeLeave = { alice: before.alice.dropped, bob: before.bob.dropped };
  check('(b) no frame between alice and bob dropped after the leave, no decryptfailure event for their tracks',
    ab && ba && since(ab.dropped, before.alice.dropped) === 0 && since(ba.dropped, before.bob.dropped) === 0
      && between(sa3).length === 0 && between(sb3).length === 0,
    { before: figures.dropsBeforeLeave, alice: ab?.dropped, bob: ba?.dropped, failures: [sa3.failures, sb3.failures] });

  // (c) Carol: closed by her own leave, no key event for the new epoch, cannot open it.
  sc = await carol.state();
  const carolLate = sc.keyEvents.slice(carolEventsBefore);
  check('(c) carol left cleanly and her Worker got no key event for epoch e1 or later',
    sc.closed?.code === 'left' && !sc.keyEvents.some((e) => (e.type === 'installed' || e.type === 'switched') && e.epoch >= e1),
    { closed: sc.closed, eventsAfterLeave: carolLate });
  const fresh = await bob.call('testSeal', SCREEN, 'bob after the leave');
  const carolNew = await carol.call('testOpen', fresh.frame);
  const aliceNew = await alice.call('testOpen', fresh.frame);
  figures.carol = carolNew.reason ?? 'OPENED';
  check('(c) a frame bob seals after the switch is on epoch e1 and opens at alice',
    fresh.frame && fresh.epoch === e1 % 256 && aliceNew.text === 'bob after the leave', { sealed: fresh.epoch, alice: aliceNew });
  check('(c) carol cannot open it: unknown_kid', carolNew.reason === 'unknown_kid', carolNew);

  // Carol ratchets her newest secret to epoch e1 herself (a made-up join with sequence e1, the
  // leave's sequence): the KID now matches, the key must not.
  await carol.call('fakeJoin', e1);
  sc = await until(carol, (s) => s.keyEvents.some((e) => e.type === 'installed' && e.epoch === e1), 3000, 100);
  const carolRatchet = await carol.call('testOpen', fresh.frame);
  figures.carolRatcheted = carolRatchet.reason ?? 'OPENED';
  check('(c) carol, having ratcheted to epoch e1 on her own, still cannot open it: auth_failed (fresh secret, not a ratchet)',
    sc.keyEvents.some((e) => e.type === 'installed' && e.epoch === e1) && carolRatchet.reason === 'auth_failed',
    { installed: sc.keyEvents.slice(carolEventsBefore), open: carolRatchet });

  for (const p of [alice, bob]) {
    const s = await p.state();
    // A relay error here would mean, e.g., an envelope addressed to the leaver (refused).
    check(`${p.name}: session still open, no relay errors, no unhandled relay messages, no key errors`,
      s.closed === null && s.errors.length === 0 && Object.keys(s.ignored).length === 0 && !s.keyEvents.some((e) => e.type === 'keyerror'),
      { closed: s.closed, ignored: s.ignored, errors: s.errors, keyErrors: s.keyEvents.filter((e) => e.type === 'keyerror') });
  }
  console.log(`figures ${JSON.stringify(figures)}`);
});
