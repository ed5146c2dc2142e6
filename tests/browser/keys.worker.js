// Test wrapper around the real Hush Worker (web/dist/worker.js): the same module, plus three
// test-only messages that reach the Worker's key ring the way the encoded transforms do, so
// the page can check which frames each member's keys open without a full WebRTC call.
//   testStream {context}      -> keyRing.streamStarted(context) (what a send transform does)
//   testUsageLimit {context}  -> keyRing.usageLimitNear(context) (an encryptor past half its budget)
//   testSeal {context, data}  -> {kind:'testSealed', frame, kid} with the context's send key
//   testOpen {frame}          -> {kind:'testOpened', data?, reason?} with every receive key
import '/web/dist/worker.js';
import { keyRing } from '/web/dist/keyring.js';
import { Receiver, Sender } from '/web/wasm/hush_wasm.js';

const SUITE = 4;
const realHandler = self.onmessage;
/** One encryptor per KID, so counters never repeat under a key. */
const senders = new Map();

self.onmessage = (event) => {
  const m = event.data;
  switch (m?.kind) {
    case 'testStream':
      keyRing.streamStarted(m.context);
      self.postMessage({ kind: 'testStreamAck' });
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
      self.postMessage({ kind: 'testSealed', frame: s.encrypt(0, m.data), kid: k.kid });
      return;
    }
    case 'testOpen': {
      const r = new Receiver(SUITE);
      for (const [kid, key] of keyRing.recvKeys()) r.addKey(kid, key);
      const data = r.decrypt(0, m.frame);
      self.postMessage({ kind: 'testOpened', data, reason: data ? undefined : r.lastError() });
      r.free();
      return;
    }
    default:
      return realHandler.call(self, event);
  }
};
