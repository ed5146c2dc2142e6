// A call survives its network going away: the relay in one network namespace, two Chromium
// participants (alice and bob, camera and microphone, key exchange, vouched) in another, joined
// by a veth link (198.18.0.0/15, harness.mjs `netLink`). Both decode each other; then the
// clients' link goes down for 5 s (`ip link set c0 down`) and comes back. Checked: media
// resumes on its own in both directions (the outage and the time to resume after the link is
// back are printed), the sessions stay open, both still show one safety code, the one from
// before (a blip is not a membership change), and no frame fails to decrypt.
// Root only (network namespaces); run by `cargo xtask test` as:
//   node tests/browser/net-link-down.test.mjs
import { execFileSync } from 'node:child_process';
import { drops, flowing, launchBrowser, onLink, participant, relayPages, sleep, startRelay, suite, until } from './harness.mjs';

const link = await onLink('hushld');
const { check, use, run } = suite('link down tests');
const relay = use(await startRelay({ link }));
const pages = use(await relayPages(relay));
const browser = use(await launchBrowser());
const where = { pages, relay, room: 'link-down' };

const decoded = async (p, other) => (await p.state()).remote[other]?.framesDecoded ?? 0;

await run(async () => {
  const alice = await participant(browser, where, 'alice', { keys: 'exchange' });
  const bob = await participant(browser, where, 'bob', { keys: 'exchange' });
  const [a, b] = [alice.joined.you, bob.joined.you];
  const sa = await until(alice, (s) => flowing(s, b) && s.safetyCode, 20_000);
  const sb = await until(bob, (s) => flowing(s, a) && s.safetyCode === sa.safetyCode, 10_000);
  check('over the link: alice and bob decode each other, one safety code',
    flowing(sa, b) && flowing(sb, a) && sa.safetyCode === sb.safetyCode, { alice: sa.remote, bob: sb.remote });

  const down = Date.now();
  spawnIp('link', 'set', link.clientDev, 'down');
  await sleep(5000);
  const stalled = [await decoded(alice, b), await decoded(bob, a)];
  await sleep(500);
  const stalledLater = [await decoded(alice, b), await decoded(bob, a)];
  check('while the link is down nothing is decoded', stalled[0] === stalledLater[0] && stalled[1] === stalledLater[1],
    { stalled, stalledLater });
  spawnIp('link', 'set', link.clientDev, 'up');
  const up = Date.now();
  let resumedAt = null;
  for (let waited = 0; waited < 30_000; waited += 100) {
    const now = [await decoded(alice, b), await decoded(bob, a)];
    if (now[0] > stalledLater[0] && now[1] > stalledLater[1]) { resumedAt = Date.now(); break; }
    await sleep(100);
  }
  console.log(`figures ${JSON.stringify({ downMs: up - down, resumedAfterUpMs: resumedAt && resumedAt - up, outageMs: resumedAt && resumedAt - down })}`);
  check('media resumes both ways without the user doing anything (within 30 s of the link coming back)', resumedAt !== null);
  const [ea, eb] = [await until(alice, (s) => flowing(s, b), 10_000), await until(bob, (s) => flowing(s, a), 10_000)];
  check('after the outage: both sessions open, same safety code as before',
    ea.closed === null && eb.closed === null && ea.safetyCode === sa.safetyCode && eb.safetyCode === sa.safetyCode,
    { closed: [ea.closed, eb.closed], codes: [sa.safetyCode, ea.safetyCode, eb.safetyCode] });
  check('no frame failed to decrypt', drops(ea.remote[b]?.dropped) === 0 && drops(eb.remote[a]?.dropped) === 0 && ea.failureEvents === 0 && eb.failureEvents === 0,
    { alice: ea.remote[b]?.dropped, bob: eb.remote[a]?.dropped });
});

/** `ip ...` in this (the clients') namespace. */
function spawnIp(...args) {
  execFileSync('ip', args);
}
