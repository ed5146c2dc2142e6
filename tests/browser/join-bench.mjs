// Join latency benchmark: `hush-relay --dev` on 127.0.0.1 and headless Chromium. Alice joins
// and publishes camera and microphone (key exchange, vouched); then JOINS (default 20) joiners,
// one after another, each joins (publishing camera and microphone, or with LISTEN=1 nothing),
// waits for Alice's first decoded video frame, and leaves. Prints, per join and as p50/p95, the time from `RelaySession.join` to: the `joined`
// answer, the connected PeerConnection, Alice's track, the epoch the joiner sends on (switched),
// and the first decoded video frame of Alice (requestVideoFrameCallback). A benchmark, not a
// test: nothing is asserted about time; it fails only when a joiner sees no frame in 10 s.
// Build first (`cargo xtask web`, `cargo build -p hush-relay`), then:
//   unshare --net sh -c 'ip link set lo up && node tests/browser/join-bench.mjs'
// HUSH_RELAY_PROFILE=release runs target/release/hush-relay (`cargo build --release -p hush-relay`).
import { launchBrowser, participant, relayPages, sleep, startRelay, suite } from './harness.mjs';

const JOINS = Number(process.env.JOINS ?? 20);
const LISTEN = process.env.LISTEN === '1';
const ROOM = 'join-bench';
const { check, use, run } = suite('join latency benchmark');
const relay = use(await startRelay());
const pages = use(await relayPages(relay));
const browser = use(await launchBrowser());
const where = { pages, relay, room: ROOM };

/** The `q` quantile (nearest rank) of `xs`. */
const quantile = (xs, q) => {
  const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] : undefined;
};

await run(async () => {
  const alice = await participant(browser, where, 'alice', { keys: 'exchange' });
  const you = alice.joined.you;
  await sleep(1000);
  const rows = [];
  for (let i = 0; i < JOINS; i++) {
    const j = await participant(browser, where, `joiner-${i}`, { keys: 'exchange', listenOnly: LISTEN });
    let tl;
    for (let waited = 0; waited < 10_000; waited += 20) {
      tl = await j.call('timeline');
      if (tl.marks[`frame:${you}`] !== undefined) break;
      await sleep(20);
    }
    const m = tl.marks;
    const at = (t) => (t === undefined ? undefined : t - m.joinCalled);
    rows.push({
      joined: at(m.joined), connected: at(m.connected), track: at(m[`track:${you}`]),
      switched: at(tl.keyEvents.find((e) => e.type === 'switched')?.t), decrypted: at(m[`decrypted:${you}`]),
      frame: at(m[`frame:${you}`]),
    });
    if (process.env.VERBOSE) console.log(JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v - m.joinCalled]))));
    await j.call('leave');
    await j.ctx.close();
    await sleep(300);
  }
  const cols = ['joined', 'connected', 'track', 'switched', 'decrypted', 'frame'];
  const cell = (v) => String(v ?? '-').padStart(10);
  console.log(`relay ${process.env.HUSH_RELAY_PROFILE ?? 'debug'} build, joiners ${LISTEN ? 'publish nothing' : 'publish camera and microphone'}`);
  console.log(`join -> (ms)${cols.map(cell).join('')}`);
  rows.forEach((r, i) => console.log(`${`#${i + 1}`.padEnd(12)}${cols.map((c) => cell(r[c])).join('')}`));
  for (const q of [0.5, 0.95]) console.log(`${`p${q * 100}`.padEnd(12)}${cols.map((c) => cell(quantile(rows.map((r) => r[c]), q))).join('')}`);
  if (process.env.RELAY_LOG) (await import('node:fs')).writeFileSync(process.env.RELAY_LOG, relay.log());
  check(`all ${JOINS} joiners decoded alice's video`, rows.every((r) => r.frame !== undefined), rows);
});
