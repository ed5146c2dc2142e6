// Random loss on one publisher's uplink: the relay and two Chromium participants (alice and
// bob, camera and microphone, key exchange, vouched) in their own network namespaces, routed
// through a gateway namespace (harness.mjs `netRouted`) where `lossy-link.py` drops 5 % of the
// UDP packets alice sends (her media port; this kernel has no netem, so the loss is done in
// userspace on a TUN device). Checked, over 20 s of loss: the loss was applied (3-7 % of
// alice's packets dropped); the relay asked alice for the lost packets and she resent them
// (NACK and RTX: her outbound `nackCount` and `retransmittedPacketsSent` grow); bob keeps
// decoding alice (over 10 of 15 frames/s) and no frame fails to decrypt. Printed: the drop
// count, NACKs and resends, bob's frame rate, freeze time and packets lost.
// Root only (network namespaces, TUN); run by `cargo xtask test` as:
//   node tests/browser/net-loss.test.mjs
import { drops, flowing, launchBrowser, lossyLink, netRouted, onLink, participant, relayPages, sleep, startRelay, suite, until } from './harness.mjs';

const link = await onLink('hushls', netRouted);
const { check, use, run } = suite('loss tests');
const relay = use(await startRelay({ link }));
const pages = use(await relayPages(relay));
const browser = use(await launchBrowser());
const where = { pages, relay, room: 'loss' };
const WINDOW_S = 20;

await run(async () => {
  const options = { keys: 'exchange', video: { width: 640, height: 360, frameRate: 15 }, simulcast: false };
  const alice = await participant(browser, where, 'alice', options);
  const bob = await participant(browser, where, 'bob', options);
  const [a, b] = [alice.joined.you, bob.joined.you];
  const sb = await until(bob, (s) => flowing(s, a), 30_000);
  check('bob decodes alice before the loss', flowing(sb, a), sb.remote);

  const port = (await alice.call('rtp')).path?.port;
  check('alice\'s media port is known', Number.isInteger(port), await alice.call('rtp'));
  const lossy = await lossyLink(link, { loss: 0.05, sport: port, seed: 7 });
  await sleep(2000);
  const sentBefore = (await alice.call('videoStats')).sent[0];
  const bobBefore = (await bob.call('videoStats')).received[a];
  const dropsBefore = drops((await bob.state()).remote[a]?.dropped);
  const lossBefore = await lossy.stats();
  await sleep(WINDOW_S * 1000);
  const sentAfter = (await alice.call('videoStats')).sent[0];
  const bobAfter = (await bob.call('videoStats')).received[a];
  const stateAfter = await bob.state();
  const lossAfter = await lossy.stop();

  const hit = lossAfter.hit - lossBefore.hit;
  const dropped = lossAfter.dropped - lossBefore.dropped;
  const figures = {
    alicePacketsThroughTheGateway: hit, dropped, dropRate: hit ? dropped / hit : null,
    nacksAliceGot: sentAfter.nackCount - sentBefore.nackCount,
    resentByAlice: sentAfter.retransmittedPacketsSent - sentBefore.retransmittedPacketsSent,
    bobFps: (bobAfter.framesDecoded - bobBefore.framesDecoded) / WINDOW_S,
    bobFreezeSeconds: bobAfter.totalFreezesDuration - bobBefore.totalFreezesDuration,
    bobPacketsLost: bobAfter.packetsLost - bobBefore.packetsLost,
    bobPliSent: bobAfter.pliCount - bobBefore.pliCount,
    windowS: WINDOW_S,
  };
  console.log(`figures ${JSON.stringify(figures)}`);
  check('5 % of alice\'s packets were dropped on her uplink (3-7 %)', hit > 500 && figures.dropRate > 0.03 && figures.dropRate < 0.07, figures);
  check('the relay asked alice for lost packets and she resent them (NACK, RTX)', figures.nacksAliceGot > 0 && figures.resentByAlice > 0, figures);
  check('bob keeps decoding alice (over 10 of 15 frames/s)', figures.bobFps > 10, figures);
  check('no frame from alice failed to decrypt at bob', drops(stateAfter.remote[a]?.dropped) === dropsBefore, stateAfter.remote[a]?.dropped);
});
