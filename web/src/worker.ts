/// <reference lib="webworker" />
/**
 * The Hush encoded-transform Worker: encrypts every outgoing frame and decrypts every
 * incoming one with hush-wasm, large frames through WebCrypto (hybrid.ts). Keys live here, in
 * the key ring (keyring.ts); the page only hands them over or carries the key exchange's
 * opaque messages. Fail closed: a frame that cannot be encrypted, or is not valid SFrame for a
 * known key, is dropped and counted. A receive transform attached for a participant opens only
 * that participant's frames, in replay windows it shares with the participant's other tracks
 * (receivers.ts).
 */
import init, { Sender } from '../wasm/hush_wasm.js';
import { HOST_AEAD_MIN_BYTES, HostKeys, HybridOpener, HybridSealer, hostSuite, orderedTransform, type FrameResult } from './hybrid.js';
import { Context, keyRing, sameBytes } from './keyring.js';
import { unattributedReceiver, unknownKidReason, receivers } from './receivers.js';
import { handleKeysMessage } from './worker-keys.js';
import type { DropReason, FromWorker, LayoutCode, ToWorker, TransformOptions, TransformStats } from './protocol.js';

declare const self: DedicatedWorkerGlobalScope;

let ready = false;
let suite = 4;
let hostKeys: HostKeys | null = null;
const stats: TransformStats[] = [];
/**
 * Stats of transforms that ended, kept for the page's next `stats` request: the newest this
 * many (a long call that adds and drops tracks must not grow the Worker without bound); those of
 * live transforms are always kept.
 */
const MAX_ENDED_STATS = 64;

/** Marks `s` ended (moved to the end: the newest ended) and drops the oldest ended past the cap. */
function ended(s: TransformStats): void {
  s.ended = true;
  const at = stats.indexOf(s);
  if (at >= 0) stats.splice(at, 1);
  stats.push(s);
  let over = stats.filter((x) => x.ended).length - MAX_ENDED_STATS;
  for (let i = 0; i < stats.length && over > 0;) {
    if (stats[i].ended) { stats.splice(i, 1); over--; } else i++;
  }
}
/** The base key of a receive KID (for its WebCrypto key). */
const recvBase = (kid: bigint): Uint8Array | undefined => keyRing.recvKey(kid)?.key;

/** Every context `setSendKey` without a context applies to. */
const ALL_CONTEXTS = Object.values(Context);
/** decryptFailure and encryptFailure events: at most one per transform and reason per this many ms. */
const FAILURE_EVENT_MS = 1000;

function post(m: FromWorker): void {
  self.postMessage(m);
}

/** Whether a page message's KID or key is refused (`kidKeyProblem`): the page is told why. */
function keyRefused(kid: unknown, key: unknown): boolean {
  const detail = kidKeyProblem(kid, key);
  if (detail === null) return false;
  post({ kind: 'error', reason: 'bad_argument', detail });
  return true;
}

/** The largest KID (the wasm binding takes a u64). */
const MAX_KID = (1n << 64n) - 1n;

/**
 * What is wrong with a page's KID and key, or null: a KID is a bigint from 0 to 2^64 - 1 (a
 * Number never matches a frame's KID; a negative or larger one would be wrapped by the wasm
 * binding and keyed apart from it), a key a Uint8Array of 16 to 64 bytes (what SFrame's key
 * derivation takes; a shorter one was acknowledged, then refused where nobody saw).
 */
function kidKeyProblem(kid: unknown, key: unknown): string | null {
  if (typeof kid !== 'bigint' || kid < 0n || kid > MAX_KID) return 'kid must be a bigint from 0 to 2^64 - 1';
  if (!(key instanceof Uint8Array)) return 'key must be a Uint8Array';
  if (key.length < 16 || key.length > 64) return 'key must be 16 to 64 bytes';
  return null;
}

/** The cipher suites the wasm frame layer has (RFC 9605 section 4.5). */
const SUITES = new Set([1, 2, 3, 4, 5]);

keyRing.listen({
  recvKeyAdded(kid) { hostKeys?.drop(kid); },
  recvKeyRemoved(kid) { hostKeys?.drop(kid); },
  sendKeyChanged(context, key) {
    if (key === null) {
      // Paused, not replaced: the same KID may resume (a stall that ends without a new epoch).
      const was = lastSendKid.get(context);
      if (was !== undefined) pausedKids.set(context, was);
      return;
    }
    pausedKids.delete(context);
    lastSendKid.set(context, key.kid);
    retireUnused();
  },
});

/** Each context's current send KID, and the KID a stopped context was sending under. */
const lastSendKid = new Map<number, bigint>();
const pausedKids = new Map<number, bigint>();

/**
 * The counters of KIDs sent on and then replaced: their encryptors and key copies are gone, and
 * a KID that comes back (the key exchange's KIDs wrap after 256 epochs, a page may set one
 * again, explicit keys restart after a relay restart) gets a new encryptor that goes on from
 * here, so no counter is used twice under any key. At most `MAX_RETIRED` KIDs; past it a
 * `setSendKey` naming a new KID is refused rather than forget one.
 */
const retired = new Map<bigint, bigint>();
const MAX_RETIRED = 65_536;

/** Retires the encryptor of every KID no context sends under or paused under. */
function retireUnused(): void {
  const live = new Set<bigint>([...keyRing.sendKids(), ...pausedKids.values()]);
  for (const [kid, entry] of sealers) {
    if (live.has(kid)) continue;
    retired.set(kid, entry.sealer.sender.nextCounter());
    entry.sealer.retire();
    entry.key.fill(0);
    hostKeys?.drop(kid);
    sealers.delete(kid);
  }
}

/** The layout code for a frame, from its MIME type where the browser gives one. */
function layoutFor(frame: RTCEncodedVideoFrame | RTCEncodedAudioFrame, kind: 'audio' | 'video'): LayoutCode {
  if (kind === 'audio') return 1;
  const meta = (frame as RTCEncodedVideoFrame).getMetadata() as { mimeType?: string };
  switch ((meta.mimeType ?? 'video/vp8').toLowerCase()) {
    case 'video/vp8': return 2;
    case 'video/vp9': return 3;
    case 'video/h264': return 4;
    case 'video/h265': return 5;
    case 'video/av1': return 6;
    default: return 0;
  }
}

type Frame = RTCEncodedVideoFrame | RTCEncodedAudioFrame;

/**
 * One encryptor per KID for the whole Worker, shared by every send transform that seals under
 * that KID. Its counter never goes back: not when a transform restarts (track replaced), not
 * when two transforms share a KID (one key set for every context, simulcast), not when a
 * stream pauses and resumes, not when a KID replaced by another comes back (`retired` keeps
 * its counter; its key copy is zeroed). So no nonce is ever used twice in this Worker,
 * whatever the page does with keys.
 */
const sealers = new Map<bigint, { sealer: HybridSealer; key: Uint8Array }>();

/**
 * The encryptor for `kid`, keyed with `key` (created, or re-keyed when the key changed). Each
 * entry compares against a copy of its own: the key ring zeroes the bytes it hands out once it
 * replaces them, and the same key handed again (a stream restarted) must not re-key the
 * encryptor (that would restart its usage count). The copy is zeroed when replaced or retired.
 */
function sealerFor(kid: bigint, key: Uint8Array): HybridSealer | null {
  const have = sealers.get(kid);
  try {
    if (have) {
      if (!sameBytes(have.key, key)) {
        have.sealer.sender.setKey(kid, key);
        hostKeys?.drop(kid);
        have.key.fill(0);
        have.key = key.slice();
      }
      return have.sealer;
    }
    const sender = new Sender(suite, kid, key);
    const resumed = retired.get(kid);
    if (resumed !== undefined) { sender.resumeFrom(resumed); retired.delete(kid); }
    const sealer = new HybridSealer(sender, hostKeys);
    sealers.set(kid, { sealer, key: key.slice() });
    return sealer;
  } catch { return null; }
}

function attach(readable: ReadableStream, writable: WritableStream, opts: TransformOptions): void {
  const context = opts.context ?? (opts.kind === 'audio' ? Context.microphone : Context.camera);
  const s: TransformStats = {
    id: opts.id, side: opts.side, kind: opts.kind, frames: 0, ok: 0, dropped: {}, bytes: 0, host: 0,
    ...(opts.side === 'send' ? { context } : {}),
    ...(opts.participant !== undefined ? { participant: opts.participant } : {}),
  };
  stats.push(s);
  const lastEvent = new Map<DropReason, number>();
  /** Send side: a frame was handed to an encryptor (sealing may finish later). */
  let sealing = false;
  const drop = (r: DropReason): null => {
    const total = (s.dropped[r] ?? 0) + 1;
    s.dropped[r] = total;
    // A duplicate (a byte-identical copy of a frame already decrypted, which browsers hand
    // the receive transform at times, see hybrid.ts) and a frame sealed before this member
    // joined (receivers.ts) are counted but are no failure.
    // A send transform's frames before its first key are no failure either (every call starts
    // so); once it has sealed (or started sealing) one, `no_key` means sending stopped.
    const report = opts.side === 'recv'
      ? r !== 'duplicate' && r !== 'before_join'
      : r === 'encrypt_failed' || (r === 'no_key' && sealing);
    if (!report) return null;
    const now = performance.now();
    const last = lastEvent.get(r);
    if (last !== undefined && now - last < FAILURE_EVENT_MS) return null;
    lastEvent.set(r, now);
    if (opts.side === 'recv') {
      post({ kind: 'decryptFailure', id: opts.id, ...(opts.participant !== undefined ? { participant: opts.participant } : {}), reason: r, total });
    } else {
      post({ kind: 'encryptFailure', id: opts.id, context, reason: r === 'no_key' ? 'no_key' : 'encrypt_failed', total });
    }
    return null;
  };
  const deliver = (frame: Frame, r: FrameResult): Frame | null => {
    if (!(r instanceof Uint8Array)) return drop(r.drop);
    frame.data = r.buffer as ArrayBuffer;
    s.ok++;
    return frame;
  };
  const finish = (frame: Frame, r: FrameResult | Promise<FrameResult>): Frame | null | Promise<Frame | null> => {
    if (!(r instanceof Promise)) return deliver(frame, r);
    s.host++;
    return r.then((v) => deliver(frame, v));
  };

  let step: (frame: Frame) => Frame | null | Promise<Frame | null>;
  let cleanup: () => void;
  if (opts.side === 'send') {
    let warnedKid: bigint | null = null;
    keyRing.streamStarted(context);
    step = (frame) => {
      s.frames++;
      const data = new Uint8Array(frame.data);
      s.bytes += data.byteLength;
      const k = keyRing.sendKey(context);
      if (!k) return drop('no_key');
      const sealer = sealerFor(k.kid, k.key);
      if (!sealer) return drop('encrypt_failed');
      sealing = true;
      const r = sealer.seal(layoutFor(frame, opts.kind), data, k.key);
      if (warnedKid !== k.kid && sealer.sender.needsRotation()) { warnedKid = k.kid; keyRing.usageLimitNear(context); }
      return finish(frame, r);
    };
    cleanup = () => keyRing.streamStopped(context);
  } else {
    // Created at the first frame (after init): the participant's shared decryptor, or on the
    // unattributed path (no participant) one of this transform's own with the unowned keys.
    const who = typeof opts.participant === 'string' ? opts.participant : undefined;
    let opener: HybridOpener | null = null;
    let release = (): void => {};
    step = (frame) => {
      s.frames++;
      const data = new Uint8Array(frame.data);
      s.bytes += data.byteLength;
      if (!opener) {
        if (who === undefined) {
          const own = unattributedReceiver(suite);
          opener = new HybridOpener(own.receiver, hostKeys, recvBase, HOST_AEAD_MIN_BYTES, (kid) => unknownKidReason(undefined, kid));
          release = () => { own.stop(); own.receiver.free(); };
        } else {
          opener = new HybridOpener(receivers.acquire(who, suite), hostKeys, recvBase, HOST_AEAD_MIN_BYTES, (kid) => unknownKidReason(who, kid));
          release = () => receivers.release(who);
        }
      }
      return finish(frame, opener.open(layoutFor(frame, opts.kind), data));
    };
    cleanup = () => { release(); release = () => {}; opener = null; };
  }
  readable.pipeThrough(orderedTransform<Frame>(step)).pipeTo(writable).catch(() => {})
    .finally(() => { cleanup(); ended(s); });
}

self.onrtctransform = (event: RTCTransformEvent) => {
  const t = event.transformer;
  attach(t.readable, t.writable, t.options as TransformOptions);
};

self.onmessage = async (event: MessageEvent<ToWorker & { readable?: ReadableStream; writable?: WritableStream; options?: TransformOptions }>) => {
  const m = event.data;
  // Legacy path (createEncodedStreams): the page transfers the streams.
  if (m.readable && m.writable && m.options) { attach(m.readable, m.writable, m.options); return; }
  if (m.kind !== 'init' && !ready) { post({ kind: 'error', reason: 'not_initialized', detail: m.kind }); return; }
  switch (m.kind) {
    case 'init':
      if (!SUITES.has(m.suite)) { post({ kind: 'error', reason: 'bad_argument', detail: `suite ${String(m.suite)}: 1 to 5 (RFC 9605)` }); return; }
      try { await init({ module_or_path: m.wasmUrl }); } catch (e) { post({ kind: 'error', reason: 'wasm_failed', detail: String(e) }); return; }
      suite = m.suite;
      hostKeys = hostSuite(suite) && m.hostAead !== false ? new HostKeys(suite) : null;
      ready = true; post({ kind: 'initAck' }); return;
    case 'setSendKey':
      if (keyRefused(m.kid, m.key)) return;
      if (m.context !== undefined && !ALL_CONTEXTS.includes(m.context as (typeof ALL_CONTEXTS)[number])) {
        m.key.fill(0);
        post({ kind: 'error', reason: 'bad_argument', detail: 'context must be 0 to 3' });
        return;
      }
      if (retired.size >= MAX_RETIRED && !retired.has(m.kid) && !sealers.has(m.kid)) {
        m.key.fill(0);
        post({ kind: 'error', reason: 'bad_argument', detail: `this Worker has sent under ${MAX_RETIRED} KIDs: start a new one` });
        return;
      }
      // The ring owns (and later zeroes) what it is given: a copy per context.
      for (const c of m.context === undefined ? ALL_CONTEXTS : [m.context]) keyRing.setSend(c, m.kid, new Uint8Array(m.key));
      m.key.fill(0);
      post({ kind: 'ack', of: m.kind }); return;
    case 'addRecvKey':
      if (m.participant !== undefined && typeof m.participant !== 'string') {
        post({ kind: 'error', reason: 'bad_argument', detail: 'participant must be a string' }); return;
      }
      if (keyRefused(m.kid, m.key)) return;
      keyRing.addRecv(m.kid, m.key, m.participant); post({ kind: 'ack', of: m.kind }); return;
    case 'removeRecvKey':
      keyRing.removeRecv(m.kid); post({ kind: 'ack', of: m.kind }); return;
    case 'stats':
      post({ kind: 'stats', transforms: stats }); return;
    case 'keysStart': case 'relayEvent':
      handleKeysMessage(m, post); return;
    default:
      post({ kind: 'error', reason: 'bad_message', detail: String((m as { kind?: unknown }).kind) });
  }
};
