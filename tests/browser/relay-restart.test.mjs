// The relay dies and comes back: `hush-relay --dev` on 127.0.0.1 is killed (SIGKILL, no
// goodbye) and started again on the same address with the same dev keys (`--dev-key-file`, as
// an app backend keeps its keys). Alice and Bob (Chromium, camera and microphone, key
// exchange, vouched) joined with `reconnect`: each must rejoin on its own with a fresh token
// (a new participant, a new member of the key exchange), emit `reconnecting` then
// `reconnected`, and decode the other again, with one new safety code and no decrypt failure.
// The time from the kill to both decoding again is printed. Carol, joined without `reconnect`,
// is closed with `socket_closed` and stays out.
//   unshare --net sh -c 'ip link set lo up && node tests/browser/relay-restart.test.mjs'
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drops, flowing, launchBrowser, participant, relayPages, startRelay, suite, until } from './harness.mjs';

const { check, use, run } = suite('relay restart tests');
const keyFile = join(tmpdir(), `hush-dev-key-${process.pid}`);
let relay = await startRelay({ devKeyFile: keyFile });
// The page server asks whichever relay runs now (same address).
const current = { get base() { return relay.base; }, devFetch: (...a) => relay.devFetch(...a) };
const pages = use(await relayPages(current));
const browser = use(await launchBrowser());
const where = { pages, relay, room: 'relay-restart' };
/** The one other member `s` (hushRelay.state()) knows of (carol is gone with the old relay). */
const other = (s) => s.members[0];

await run(async () => {
  try {
    const alice = await participant(browser, where, 'alice', { keys: 'exchange', reconnect: true });
    const bob = await participant(browser, where, 'bob', { keys: 'exchange', reconnect: true });
    const sa = await until(alice, (s) => flowing(s, bob.joined.you) && s.safetyCode, 20_000);
    const sb = await until(bob, (s) => flowing(s, alice.joined.you) && s.safetyCode === sa.safetyCode, 10_000);
    check('before: alice and bob decode each other, one safety code',
      flowing(sa, bob.joined.you) && flowing(sb, alice.joined.you) && sa.safetyCode === sb.safetyCode);

    // Carol joined without `reconnect`: the relay's death ends her session, as before.
    const carol = await participant(browser, where, 'carol', { keys: 'exchange', listenOnly: true });

    const killed = Date.now();
    await relay.kill();
    relay = await startRelay({ port: relay.port, devKeyFile: keyFile });
    const restarted = Date.now();
    const back = (s) => s.connEvents.some((e) => e.type === 'reconnected') && other(s) && flowing(s, other(s));
    const [ea, eb] = [await until(alice, back, 40_000), await until(bob, back, 20_000)];
    const sc = await carol.state();
    check('carol (no reconnect) is closed with socket_closed and does not rejoin',
      sc.closed?.code === 'socket_closed' && sc.connEvents.length === 0, { closed: sc.closed, events: sc.connEvents });
    const both = Date.now();
    const events = (s) => s.connEvents.map((e) => e.type);
    console.log(`figures ${JSON.stringify({
      restartMs: restarted - killed, bothDecodingMs: both - killed,
      alice: ea.connEvents.map(({ type, attempt, attempts, ms, code }) => ({ type, attempt, attempts, ms, code })),
      bob: eb.connEvents.map(({ type, attempt, attempts, ms, code }) => ({ type, attempt, attempts, ms, code })),
    })}`);
    check('both emit reconnecting, then reconnected',
      events(ea)[0] === 'reconnecting' && events(ea).at(-1) === 'reconnected' && events(eb)[0] === 'reconnecting' && events(eb).at(-1) === 'reconnected',
      { alice: events(ea), bob: events(eb) });
    check('both rejoined as new participants and decode each other again',
      back(ea) && back(eb) && other(ea) === eb.you && other(eb) === ea.you && ea.you !== alice.joined.you && eb.you !== bob.joined.you,
      { alice: [ea.you, ea.members, ea.remote], bob: [eb.you, eb.members, eb.remote] });
    const ca = await until(alice, (s) => s.safetyCode && s.safetyCode !== sa.safetyCode, 5000);
    const cb = await until(bob, (s) => s.safetyCode === ca.safetyCode, 5000);
    check('a new safety code, the same on both (a new key exchange)',
      ca.safetyCode && ca.safetyCode !== sa.safetyCode && cb.safetyCode === ca.safetyCode, [sa.safetyCode, ca.safetyCode, cb.safetyCode]);
    check('sessions open, no frame of the new members failed to decrypt',
      ca.closed === null && cb.closed === null && drops(ca.remote[other(ca)]?.dropped) === 0 && drops(cb.remote[other(cb)]?.dropped) === 0,
      { alice: [ca.closed, ca.remote], bob: [cb.closed, cb.remote] });
  } finally {
    relay.close();
    rmSync(keyFile, { force: true });
  }
});
