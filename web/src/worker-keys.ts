/// <reference lib="webworker" />
/**
 * The key exchange inside the Worker: one hush-keys session (hush-wasm `KeySession`) per
 * `keysStart`. The page only carries opaque relay messages (`relayEvent` in, `relaySend` out);
 * identity keys and epoch secrets stay in wasm memory, frame keys go to the key ring and
 * nowhere else. Session timers run here (setTimeout at `nextTimeout`). Membership is vouched
 * by default: the session checks each member's attestation with the app backend's key. Each
 * receive key goes to the key ring bound to its sender (`keyOwner`: the member with the KID's
 * sender index), so a track only opens the frames of the participant it carries (receivers.ts).
 */
import { KeySession } from '../wasm/hush_wasm.js';
import { keyRing } from './keyring.js';
import type { FromWorker, KeyEvent, RelayMessage, ToWorker } from './protocol.js';

declare const self: DedicatedWorkerGlobalScope;

/** The messages this module handles. */
export type KeysMessage = Extract<ToWorker, { kind: 'keysStart' | 'relayEvent' }>;

/** Whether `m` is one of this module's messages. */
export function isKeysMessage(m: ToWorker): m is KeysMessage {
  return m.kind === 'keysStart' || m.kind === 'relayEvent';
}

/** One output of `KeySession.pollOutputs()`. */
type Output =
  | { kind: 'relaySend'; json: string }
  | { kind: 'key'; op: 'setSend' | 'stopSend' | 'addRecv' | 'removeRecv'; context?: number; kid?: bigint; key?: Uint8Array }
  | { kind: 'event'; event: KeyEvent };

/** setTimeout's longest delay. */
const MAX_DELAY_MS = 0x7fffffff;

let session: KeySession | null = null;
let timer: ReturnType<typeof setTimeout> | null = null;
let post: (m: FromWorker) => void = (m) => self.postMessage(m);
/**
 * Local send transforms running now, counted per stream context: a session started later (or
 * joined later) learns of them, and a context stops only when its last transform stops (two
 * transforms can share one, e.g. after replaceTrack: stopping one must not freeze the other on
 * a key the session no longer renews).
 */
const streams = new Map<number, number>();
/**
 * What the session put in the key ring: receive KIDs and send contexts. A new `keysStart` (a
 * rejoin: a new member of a new key exchange) takes them out, so nothing of the old session
 * seals or opens a frame after it.
 */
const installedRecv = new Set<bigint>();
const installedSend = new Set<number>();

/** Feeds a transform notice to the session; a refusal before the join is expected (replayed later). */
function notify(call: (s: KeySession, now: number) => string | undefined): void {
  if (!session) return;
  call(session, Date.now());
  drain();
}

keyRing.listen({
  streamStarted(context) {
    const n = (streams.get(context) ?? 0) + 1;
    streams.set(context, n);
    if (n === 1) notify((s, now) => s.localStreamStarted(now, context));
  },
  streamStopped(context) {
    const n = (streams.get(context) ?? 0) - 1;
    if (n > 0) { streams.set(context, n); return; }
    streams.delete(context);
    notify((s, now) => s.localStreamStopped(now, context));
  },
  usageLimitNear(context) { notify((s, now) => s.usageLimitNear(now, context)); },
});

/** Applies the session's outputs: keys to the key ring, messages and events to the page. */
function drain(): void {
  if (!session) return;
  for (const o of session.pollOutputs() as Output[]) {
    switch (o.kind) {
      case 'relaySend':
        post({ kind: 'relaySend', message: JSON.parse(o.json) as RelayMessage });
        break;
      case 'key':
        if (o.op === 'setSend' && o.context !== undefined && o.kid !== undefined && o.key) {
          keyRing.setSend(o.context, o.kid, o.key);
          installedSend.add(o.context);
        } else if (o.op === 'stopSend' && o.context !== undefined) {
          keyRing.stopSend(o.context);
          installedSend.delete(o.context);
        } else if (o.op === 'addRecv' && o.kid !== undefined && o.key) {
          // Bound to its sender: only transforms attached for that participant open its frames.
          keyRing.addRecv(o.kid, o.key, session.keyOwner(o.kid));
          installedRecv.add(o.kid);
        } else if (o.op === 'removeRecv' && o.kid !== undefined) {
          keyRing.removeRecv(o.kid);
          installedRecv.delete(o.kid);
        }
        break;
      case 'event':
        post({ kind: 'keyEvent', event: o.event });
        break;
    }
  }
  schedule();
}

/** Arms the timer for the session's next deadline. */
function schedule(): void {
  if (timer !== null) { clearTimeout(timer); timer = null; }
  const at = session?.nextTimeout();
  if (at === undefined) return;
  const delay = Math.min(Math.max(0, at - Date.now()), MAX_DELAY_MS);
  timer = setTimeout(() => {
    timer = null;
    session?.handleTick(Date.now());
    drain();
  }, delay);
}

function stop(): void {
  if (timer !== null) { clearTimeout(timer); timer = null; }
  keyRing.setPreJoinCheck(null);
  session?.free();
  session = null;
  for (const c of installedSend) keyRing.stopSend(c);
  for (const kid of installedRecv) keyRing.removeRecv(kid);
  installedSend.clear();
  installedRecv.clear();
}

function fail(reason: string): void {
  post({ kind: 'keyEvent', event: { type: 'error', reason } });
}

/** Handles `keysStart` and `relayEvent` (the Worker's onmessage dispatches them here). */
export function handleKeysMessage(m: KeysMessage, postTo?: (m: FromWorker) => void): void {
  if (postTo) post = postTo;
  if (m.kind === 'keysStart') {
    stop();
    try {
      // The session draws every secret from this Worker's own crypto.getRandomValues.
      const shared = m.mode === 'shared' ? m.sharedSecret ?? null : null;
      if (m.backendKey instanceof Uint8Array) {
        // Members the relay announces without the backend's attestation get no epoch secret.
        session = new KeySession(m.mode, shared, m.backendKey);
      } else if (m.insecureUnvouchedMembers === true) {
        session = KeySession.insecureUnvouchedMembers(m.mode, shared);
      } else {
        throw new Error('backendKey is required (or insecureUnvouchedMembers: true)');
      }
    } catch (e) {
      // The answer to keysStart (the page's request fails with it), then the event as before.
      const detail = e instanceof Error ? e.message : String(e);
      post({ kind: 'error', reason: 'bad_argument', detail });
      fail(`start_failed: ${detail}`);
      return;
    } finally {
      // The shared secret was copied into wasm; wipe the structured clone.
      m.sharedSecret?.fill(0);
    }
    const s = session;
    keyRing.setPreJoinCheck((kid) => (s.predatesJoin(Date.now(), kid) ? s.keyOwner(kid) : undefined));
    post({ kind: 'keysIdentity', identityKey: session.identityKey() });
    return;
  }
  if (!session) { fail('not_started'); return; }
  let text: string;
  try { text = JSON.stringify(m.event); } catch { fail('malformed_event'); return; }
  const refused = session.handleRelayEvent(Date.now(), text);
  if (refused !== undefined) fail(refused);
  // Streams that started before the join get their keys now (repeats are no-ops).
  if (m.event?.type === 'joined' && refused === undefined) {
    for (const c of streams.keys()) session.localStreamStarted(Date.now(), c);
  }
  drain();
}
