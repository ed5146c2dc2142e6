// A relay that moves a participant into another room is refused before any key exchange, in a
// real browser: `hush-relay --dev` on 127.0.0.1, headless Chromium, the page's WebSocket to the
// relay routed through Playwright, which plays the lying relay by rewriting `joined.room`.
// Attestations bind a member to a room, but a client checks them against the room `joined`
// names: a relay answering with "lobby", whose members' attestations it holds (any account of
// the app can get one for a room of its own), would have its members admitted. So the session
// compares `joined.room` with the room it set out to join (`room`, or its token's claim) and
// fails with `wrong_room`.
//
// The same route passing `joined` untouched lets the join through: the check is not vacuous.
import { launchBrowser, openRelayPage, relayPages, startRelay, suite, watch } from './harness.mjs';

const { check, use, run } = suite('relay wrong-room tests');
const ROOM = 'wrong-room-test';
const relay = use(await startRelay());
const pages = use(await relayPages(relay));
const browser = use(await launchBrowser());

/** A fresh page whose relay WebSocket passes through `rewrite(message)` (relay to page). */
async function pageBehind(name, rewrite) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  watch(page, name);
  const rewritten = [];
  await page.routeWebSocket(/\/v1\/rtc/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((text) => {
      let m = null;
      try { m = JSON.parse(String(text)); } catch { /* not JSON: passed on as it is */ }
      const out = m ? rewrite(m) : null;
      if (out) rewritten.push(m.type);
      ws.send(out ? JSON.stringify(out) : text);
    });
  });
  await openRelayPage(page, pages);
  return { page, ctx, rewritten };
}

/** Joins from `page` with the key exchange; `{ ok, you }` or `{ ok: false, error }`. */
async function tryJoin(page, { withRoom }) {
  const { token, participant } = await relay.dev(ROOM);
  // Without a room option the page gets no attestation (the dev backend vouches per room): it
  // then admits unvouched members, and the token's room is the only one it knows.
  const options = { url: relay.ws, token, participant, keys: 'exchange', ...(withRoom ? { room: ROOM } : { unvouched: true }) };
  return page.evaluate(async (o) => {
    try {
      const joined = await window.hushRelay.join(o);
      return { ok: true, you: joined.you, unsupported: joined.unsupported === true };
    } catch (e) {
      return { ok: false, error: String(e?.message ?? e) };
    }
  }, options);
}

const toLobby = (m) => (m.type === 'joined' ? { ...m, room: 'lobby' } : null);

await run(async () => {
  // Honest route: the join goes through.
  const honest = await pageBehind('honest', () => null);
  const h = await tryJoin(honest.page, { withRoom: true });
  check('through the untouched route the join succeeds', h.ok && h.you && !h.unsupported, h);
  await honest.ctx.close();

  // The relay says "lobby": refused, whether the page named its room or only its token did.
  for (const withRoom of [true, false]) {
    const lying = await pageBehind(`lying-${withRoom ? 'room' : 'token'}`, toLobby);
    const r = await tryJoin(lying.page, { withRoom });
    check(`a joined for another room is refused (${withRoom ? 'room option' : 'room from the token'})`,
      !r.ok && /another room/.test(r.error) && lying.rewritten.includes('joined'), { r, rewritten: lying.rewritten });
    // No key exchange started: the page is not in a call (no session state).
    const state = await lying.page.evaluate(() => window.hushRelay.state()).catch((e) => ({ error: String(e) }));
    check(`no session after the refusal (${withRoom ? 'room option' : 'room from the token'})`,
      !state || state.error !== undefined || (!state.you && !state.safetyCode), state);
    await lying.ctx.close();
  }
});
