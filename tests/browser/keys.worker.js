// Test wrapper around the real Hush Worker (web/dist/worker.js): the same module, plus test-only
// messages that reach the Worker's key ring and its receive transforms the way the browser
// does, so the page can check which frames each member's keys open without a full WebRTC call.
//   testStream {context}      -> keyRing.streamStarted(context) (what a send transform does)
//   testStreamStop {context}  -> keyRing.streamStopped(context) (a send transform ends)
//   testStopSend {context}    -> keyRing.stopSend(context) (what a stalled key exchange does)
//   testWasmScan {secret}     -> hands `secret` (32 bytes) to every wasm entry that takes a key
//                                or a room secret, frees what they made, and counts the places
//                                the tails of its first 16 bytes and of all 32 still sit in
//                                wasm memory:
//                                {kind:'testWasmScanned', key, secret}
//   testWasmCount {needle}    -> {kind:'testWasmCounted', n}: the places `needle` sits in wasm
//                                memory now (no wasm call is made first)
//   testSlowSeal {ms}         -> WebCrypto's encrypt resolves `ms` later from now on, so a seal is
//                                still in flight when the next message arrives: {kind:'testSlowSealAck'}
//   testUsageLimit {context}  -> keyRing.usageLimitNear(context) (an encryptor past half its budget)
//   testSeal {context, data, layout?} -> {kind:'testSealed', frame, kid} with the context's send key
//   testOpen {frame}          -> {kind:'testOpened', data?, reason?} with every receive key
//   testTrack {id, participant?, side?, context?} -> a transform (kind audio; `side` 'recv' by
//                                   default, 'send' seals for `context`) started through the
//                                   Worker's own legacy-streams entry, as a page's
//                                   createEncodedStreams would: {kind:'testTrackAck'}
//   testSealWith {kid, key, data} -> {kind:'testSealed', frame} under a key the page names
//   testFeed {id, frames}     -> the frames enter that transform, in order: {kind:'testFed'}
//   testTaken {id}            -> {kind:'testTook', frames}: what the transform let through so far
//   testTrackEnd {id}         -> that transform's input ends (a track stopped): {kind:'testTrackEnded'}
//   testKeyHold {context}     -> keeps references to the key ring's send key of `context` and to
//                                every receive key, as they are now: {kind:'testKeyHoldAck'}
//   testKeyHeld {context}     -> {kind:'testKeyHeldReport', send: {current, zeroed}, recv: [{kept, zeroed}]}
//                                for those bytes: still in the ring, and all zero
import '/web/dist/worker.js';
import { keyRing } from '/web/dist/keyring.js';
import init, { KeySession, Receiver, Sender, aeadKey, deriveKey, frameNonce } from '/web/wasm/hush_wasm.js';

const SUITE = 4;
const realHandler = self.onmessage;
/** One encryptor per KID, so counters never repeat under a key. */
const senders = new Map();
/** Test receive transforms by id: where frames go in, what came out. */
const tracks = new Map();
/** Key bytes referenced by testKeyHold. */
let held = null;
const zeroed = (b) => b.every((x) => x === 0);
/** The places `needle` sits in `mem`. */
const countIn = (mem, needle) => {
  let n = 0;
  for (let i = mem.indexOf(needle[0]); i !== -1 && i + needle.length <= mem.length; i = mem.indexOf(needle[0], i + 1)) {
    let j = 1;
    while (j < needle.length && mem[i + j] === needle[j]) j++;
    if (j === needle.length) n++;
  }
  return n;
};

self.onmessage = (event) => {
  const m = event.data;
  switch (m?.kind) {
    case 'testStream':
      keyRing.streamStarted(m.context);
      self.postMessage({ kind: 'testStreamAck' });
      return;
    case 'testStreamStop':
      keyRing.streamStopped(m.context);
      self.postMessage({ kind: 'testStreamStopAck' });
      return;
    case 'testWasmScan': {
      const wasmScan = async () => {
        const w = await init();
        const secret = m.secret;
        const key = () => secret.slice(0, 16);
        // The vector helpers first: what they leave on the wasm stack (hash buffers) the calls
        // below overwrite, so the scan sees the heap, where wasm-bindgen's argument copies were
        // left unzeroed and stay until reused.
        deriveKey(SUITE, 1n, key()).fill(0);
        frameNonce(SUITE, 1n, key(), 5n);
        new Sender(SUITE, 1n, key()).free();
        const r = new Receiver(SUITE);
        r.addKey(1n, key());
        r.free();
        const s = new Sender(SUITE, 2n, new Uint8Array(16).fill(1));
        s.setKey(3n, key());
        s.free();
        aeadKey(SUITE, 1n, key()).fill(0);
        KeySession.insecureUnvouchedMembers('shared', secret.slice()).free();
        const mem = new Uint8Array(w.memory.buffer);
        const count = (needle) => countIn(mem, needle);
        // The allocator writes its free-list links over the first bytes of a freed block: look
        // for the tail of each (the key's bytes 8..16, the secret's 16..32).
        self.postMessage({ kind: 'testWasmScanned', key: count(secret.subarray(8, 16)), secret: count(secret.subarray(16, 32)) });
      };
      wasmScan();
      return;
    }
    case 'testWasmCount':
      // `init` hands back the module the Worker already started (it makes no call into it).
      init().then((w) => self.postMessage({ kind: 'testWasmCounted', n: countIn(new Uint8Array(w.memory.buffer), m.needle) }));
      return;
    case 'testSlowSeal': {
      const encrypt = crypto.subtle.encrypt.bind(crypto.subtle);
      crypto.subtle.encrypt = (...args) => encrypt(...args).then((ct) => new Promise((r) => setTimeout(() => r(ct), m.ms)));
      self.postMessage({ kind: 'testSlowSealAck' });
      return;
    }
    case 'testStopSend':
      keyRing.stopSend(m.context);
      self.postMessage({ kind: 'testStopSendAck' });
      return;
    case 'testKeyHold':
      held = { send: keyRing.sendKey(m.context)?.key, recv: [...keyRing.recvKeys()].map(([kid, k]) => [kid, k.key]) };
      self.postMessage({ kind: 'testKeyHoldAck' });
      return;
    case 'testKeyHeld':
      self.postMessage({
        kind: 'testKeyHeldReport',
        send: held?.send ? { current: keyRing.sendKey(m.context)?.key === held.send, zeroed: zeroed(held.send) } : null,
        recv: (held?.recv ?? []).map(([kid, key]) => ({ kept: keyRing.recvKey(kid)?.key === key, zeroed: zeroed(key) })),
      });
      return;
    case 'testUsageLimit':
      keyRing.usageLimitNear(m.context);
      self.postMessage({ kind: 'testUsageLimitAck' });
      return;
    case 'testSeal': {
      const k = keyRing.sendKey(m.context);
      if (!k) { self.postMessage({ kind: 'testSealed', reason: 'no_key' }); return; }
      let s = senders.get(k.kid);
      if (!s) { s = new Sender(SUITE, k.kid, k.key); senders.set(k.kid, s); }
      self.postMessage({ kind: 'testSealed', frame: s.encrypt(m.layout ?? 0, m.data), kid: k.kid });
      return;
    }
    case 'testSealWith': {
      const s = new Sender(SUITE, m.kid, m.key);
      self.postMessage({ kind: 'testSealed', frame: s.encrypt(1, m.data), kid: m.kid });
      s.free();
      return;
    }
    case 'testOpen': {
      const r = new Receiver(SUITE);
      // The ring's entries: a key, or (with attribution) a key and its owner.
      for (const [kid, k] of keyRing.recvKeys()) r.addKey(kid, k instanceof Uint8Array ? k : k.key);
      const data = r.decrypt(0, m.frame);
      self.postMessage({ kind: 'testOpened', data, reason: data ? undefined : r.lastError() });
      r.free();
      return;
    }
    case 'testTrack': {
      let input;
      const readable = new ReadableStream({ start(c) { input = c; } });
      const out = [];
      const writable = new WritableStream({ write(frame) { out.push(new Uint8Array(frame.data)); } });
      tracks.set(m.id, { input, out });
      const options = m.side === 'send'
        ? { side: 'send', kind: 'audio', id: m.id, context: m.context ?? 0 }
        : { side: 'recv', kind: 'audio', id: m.id, ...(m.participant !== undefined ? { participant: m.participant } : {}) };
      realHandler.call(self, new MessageEvent('message', { data: { readable, writable, options } }));
      self.postMessage({ kind: 'testTrackAck' });
      return;
    }
    case 'testFeed': {
      const t = tracks.get(m.id);
      // A frame as the transform sees one: `data` read and replaced (audio: no metadata needed).
      for (const f of m.frames) t.input.enqueue({ data: f.slice().buffer });
      self.postMessage({ kind: 'testFed' });
      return;
    }
    case 'testTrackEnd':
      tracks.get(m.id)?.input.close();
      tracks.delete(m.id);
      self.postMessage({ kind: 'testTrackEnded' });
      return;
    case 'testTaken':
      self.postMessage({ kind: 'testTook', frames: tracks.get(m.id).out.slice() });
      return;
    default:
      return realHandler.call(self, event);
  }
};
