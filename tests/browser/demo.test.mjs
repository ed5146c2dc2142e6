// The demo page through the relay: `hush-relay --dev` on 127.0.0.1 serves web/demo; two
// headless Chromium contexts open the same `/r/NAME` link (which joins at once with camera and
// microphone). Both pages must show two tiles with decoded video and green E2EE badges, and the
// same safety code. Both joined in two steps (the relay's dev backend vouched for their identity
// keys), say so on screen, and list both members; a third client that joins with an identity
// key nobody vouched for (a ghost) is listed on both pages as refused, with the reason, while
// the code stays. Saves tests/browser/artifacts/demo.png.
import { artifact, demoInCall, demoState, demoUntil, launchBrowser, startRelay, suite, watch } from './harness.mjs';

const { check, use, run } = suite('demo tests');
const ROOM = 'demo-test';
const relay = use(await startRelay());
const browser = use(await launchBrowser());

const ready = (s) => demoInCall(s) && (s.mode !== 'exchange' || /\d/.test(s.safetyCode ?? ''));

await run(async () => {
  const pages = [];
  for (const name of ['first', 'second']) {
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
    const page = await ctx.newPage();
    watch(page, name);
    await page.goto(`${relay.base}/r/${ROOM}`);
    pages.push(page);
  }
  const states = [];
  for (const page of pages) states.push(await demoUntil(page, ready, 30_000, 500));
  await pages[0].screenshot({ path: await artifact('demo.png'), fullPage: true });
  for (const [i, s] of states.entries()) {
    const label = i === 0 ? 'first page' : 'second page';
    check(`${label}: two tiles (self and the other)`, s.tiles.length === 2, s.tiles.map((t) => t.participant));
    check(`${label}: both tiles show decoded video`, s.tiles.every((t) => t.videoWidth > 0), s.tiles.map((t) => t.videoWidth));
    check(`${label}: both E2EE badges green`, s.tiles.every((t) => t.e2ee === 'ok'), s.tiles.map((t) => `${t.badge} | ${t.stats}`));
    check(`${label}: still in the call, room link shown`, !s.closed && s.link?.endsWith(`/r/${ROOM}`), { closed: s.closed, status: s.status, link: s.link });
  }
  const [a, b] = states;
  check('the demo runs the key exchange', a.mode === 'exchange' && b.mode === 'exchange', { first: a.mode, second: b.mode });
  check('both pages show the same safety code', /^\d{5}( \d{5}){4}$/.test(a.safetyCode) && a.safetyCode === b.safetyCode,
    { first: a.safetyCode, second: b.safetyCode });
  const self0 = a.tiles.find((t) => t.participant === 'self');
  const other1 = b.tiles.find((t) => t.participant !== 'self');
  check('the pages see each other (tile ids match across pages)', self0 && other1 && a.tiles.some((t) => t.participant !== 'self')
    && b.tiles.some((t) => t.participant !== 'self'), { a: a.tiles.map((t) => t.participant), b: b.tiles.map((t) => t.participant) });

  for (const [i, s] of states.entries()) {
    const label = i === 0 ? 'first page' : 'second page';
    check(`${label}: says dev mode vouches with a dev key`, /dev backend key/.test(s.vouching ?? ''), s.vouching);
    check(`${label}: lists both members of the key exchange, vouched`, s.members.length === 2 && s.members.every((m) => m.status === 'ok'), s.members);
  }

  // A ghost: a client with a dev token whose identity key nobody vouched for (no attestation).
  const ghostPage = await (await browser.newContext()).newPage();
  await ghostPage.goto(`${relay.base}/healthz`);
  const ghost = await relay.dev(ROOM);
  const ghostJoined = await ghostPage.evaluate(({ ws, token }) => new Promise((resolve) => {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
    const sock = new WebSocket(ws);
    window.ghostSocket = sock;
    sock.onopen = () => sock.send(JSON.stringify({ v: 1, type: 'join', token, identity_key: key }));
    sock.onmessage = (e) => resolve(JSON.parse(e.data).type);
    setTimeout(() => resolve('timeout'), 5000);
  }), { ws: relay.ws, token: ghost.token });
  const refusedGhost = (s) => s.members.find((m) => m.id === ghost.participant);
  const ghostStates = [];
  for (const page of pages) {
    ghostStates.push(await demoUntil(page, (s) => s.members.some((m) => m.id === ghost.participant && m.status === 'refused'), 5000, 200));
  }
  check('a member nobody vouched for is listed as refused with the reason on both pages, code unchanged',
    ghostJoined === 'joined' && ghostStates.every((s, i) => /refused: missing_attestation/.test(refusedGhost(s)?.text ?? '')
      && s.safetyCode === states[i].safetyCode),
    { ghostJoined, members: ghostStates.map((s) => s.members), codes: ghostStates.map((s) => s.safetyCode) });
  await pages[0].screenshot({ path: await artifact('demo-refused.png'), fullPage: true });

  // The banner a stalled epoch shows (the stall itself through a Worker is keys.test.mjs (l)):
  // the page's HushE2ee reports keyawaited, the banner says sending stopped, a switch ends it.
  const banner = await pages[0].evaluate(async () => {
    const { e2ee } = window.hushDemo;
    const el = document.getElementById('key-awaited');
    const shown = () => ({ hidden: el.hidden, text: el.textContent });
    const before = shown();
    e2ee.dispatchEvent(new CustomEvent('keyawaited', { detail: { epoch: 1e6 } }));
    const during = shown();
    e2ee.dispatchEvent(new CustomEvent('keychange', { detail: { type: 'switched', epoch: 1e6 } }));
    return { before, during, after: shown() };
  });
  check('a stalled epoch shows "not sent until it arrives" and the switch hides it',
    banner.before.hidden && !banner.during.hidden && /not sent until it arrives/.test(banner.during.text) && banner.after.hidden, banner);

  // The relay lost: the session's reconnecting and reconnected events show in the status line
  // (the rejoin itself is relay-restart.test.mjs).
  const rec = await pages[1].evaluate(async () => {
    const { session } = window.hushDemo;
    const text = () => document.getElementById('status').textContent;
    session.dispatchEvent(new CustomEvent('reconnecting', { detail: { attempt: 2, code: 'socket_closed' } }));
    const during = text();
    session.dispatchEvent(new CustomEvent('reconnected', { detail: { attempts: 2, ms: 1500 } }));
    return { during, after: text() };
  });
  check('the page says it is reconnecting, then that it reconnected',
    /reconnecting, attempt 2/.test(rec.during) && /Reconnected after 1\.5 s/.test(rec.after), rec);

  // A bad room name is refused on the page, without joining.
  const ctx = await browser.newContext();
  const bad = await ctx.newPage();
  await bad.goto(`${relay.base}/r/${encodeURIComponent('no spaces!')}`);
  await bad.waitForTimeout(500);
  const badState = await bad.evaluate(demoState);
  check('an invalid room name is refused on the page', badState.tiles.length === 0 && /not valid/.test(badState.status ?? ''), badState.status);
});
