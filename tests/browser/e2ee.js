// Page side of the browser tests: drives two peer connections with the Hush Worker on each
// side, and runs the RFC 9605 vectors through the wasm build. The Node runner calls these
// through `window.hush`.
import init, * as wasm from '/web/wasm/hush_wasm.js';

const WASM_URL = '/web/wasm/hush_wasm_bg.wasm';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const unhex = (s) => new Uint8Array(s.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);

/** RFC 9605 vectors through wasm. KID and CTR go up to 2^64-1: parsed as BigInt. */
async function vectors() {
  await init({ module_or_path: WASM_URL });
  const text = await (await fetch('/crates/hush-frame/tests/vectors/rfc9605.json')).text();
  const v = JSON.parse(text.replace(/"(kid|ctr)":\s*(\d+)/g, '"$1":"$2"'));
  const fail = [];
  let headers = 0, ctrHmac = 0, sframe = 0;
  for (const h of v.header) {
    const kid = BigInt(h.kid), ctr = BigInt(h.ctr);
    if (hex(wasm.headerEncode(kid, ctr)) !== h.encoded) fail.push(`encode ${h.kid}/${h.ctr}`);
    const d = wasm.headerDecode(unhex(h.encoded));
    if (d[0] !== kid || d[1] !== ctr || Number(d[2]) * 2 !== h.encoded.length) fail.push(`decode ${h.kid}/${h.ctr}`);
    headers++;
  }
  for (const c of v.aes_ctr_hmac) {
    const ct = wasm.aeadSeal(c.cipher_suite, unhex(c.key), unhex(c.nonce), unhex(c.aad), unhex(c.pt));
    if (hex(ct) !== c.ct) fail.push(`ctr_hmac ${c.cipher_suite}`);
    ctrHmac++;
  }
  for (const s of v.sframe) {
    const kid = BigInt(s.kid), ctr = BigInt(s.ctr), base = unhex(s.base_key);
    const d = hex(wasm.deriveKey(s.cipher_suite, kid, base));
    if (d !== s.sframe_secret + s.sframe_key + s.sframe_salt) fail.push(`derive ${s.cipher_suite}`);
    const nonce = wasm.frameNonce(s.cipher_suite, kid, base, ctr);
    if (hex(nonce) !== s.nonce) fail.push(`nonce ${s.cipher_suite}`);
    const header = wasm.headerEncode(kid, ctr);
    if (hex(header) + s.metadata !== s.aad) fail.push(`aad ${s.cipher_suite}`);
    const body = wasm.aeadSeal(s.cipher_suite, unhex(s.sframe_key), nonce, unhex(s.aad), unhex(s.pt));
    if (hex(header) + hex(body) !== s.ct) fail.push(`ct ${s.cipher_suite}`);
    const rx = new wasm.Receiver(s.cipher_suite);
    rx.addKey(kid, base);
    const pt = rx.decryptWithMetadata(0, unhex(s.ct), unhex(s.metadata));
    if (!pt || hex(pt) !== s.pt) fail.push(`decrypt ${s.cipher_suite}`);
    sframe++;
  }
  return { headers, ctrHmac, sframe, fail };
}

async function startWorker() {
  const w = new Worker('/web/dist/worker.js', { type: 'module' });
  const ack = new Promise((resolve, reject) => {
    w.onmessage = (e) => (e.data.kind === 'initAck' ? resolve() : reject(new Error(JSON.stringify(e.data))));
  });
  w.postMessage({ kind: 'init', wasmUrl: WASM_URL, suite: 4 });
  await ack;
  w.onmessage = null;
  return w;
}

function ask(w, msg, kind) {
  return new Promise((resolve) => {
    w.addEventListener('message', function on(e) {
      if (e.data.kind === kind) { w.removeEventListener('message', on); resolve(e.data); }
    });
    w.postMessage(msg);
  });
}

async function inbound(pc) {
  const out = {};
  (await pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp') out[r.kind] = r; });
  return out;
}

/**
 * A call pc1 -> pc2 with E2EE on both sides. `recvKey` picks the receiver's key ('same' or
 * 'wrong'); `codec` is the video MIME type to negotiate.
 */
async function call({ recvKey = 'same', codec = 'video/VP8', seconds = 5 } = {}) {
  const key = new Uint8Array(16).fill(7);
  const wrong = new Uint8Array(16).fill(8);
  const w1 = await startWorker();
  const w2 = await startWorker();
  await ask(w1, { kind: 'setSendKey', kid: 1n, key }, 'ack');
  await ask(w2, { kind: 'addRecvKey', kid: 1n, key: recvKey === 'same' ? key : wrong }, 'ack');

  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc1 = new RTCPeerConnection({ encodedInsertableStreams: false });
  const pc2 = new RTCPeerConnection();
  pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
  pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
  for (const track of stream.getTracks()) {
    const sender = pc1.addTrack(track, stream);
    sender.transform = new RTCRtpScriptTransform(w1, { side: 'send', kind: track.kind, id: `pc1-${track.kind}` });
    if (track.kind === 'video') {
      const t = pc1.getTransceivers().find((x) => x.sender === sender);
      const caps = RTCRtpSender.getCapabilities('video').codecs;
      const pref = caps.filter((c) => c.mimeType.toLowerCase() === codec.toLowerCase());
      if (!pref.length) throw new Error(`codec ${codec} not offered`);
      t.setCodecPreferences([...pref, ...caps.filter((c) => !pref.includes(c))]);
    }
  }
  pc2.ontrack = (e) => {
    // Answerer: ontrack fires in setRemoteDescription, before our setLocalDescription.
    e.receiver.transform = new RTCRtpScriptTransform(w2, { side: 'recv', kind: e.track.kind, id: `pc2-${e.track.kind}` });
    const el = document.getElementById(e.track.kind === 'video' ? 'remote' : 'remoteAudio');
    el.srcObject = new MediaStream([e.track]);
  };
  await pc1.setLocalDescription(await pc1.createOffer());
  await pc2.setRemoteDescription(pc1.localDescription);
  await pc2.setLocalDescription(await pc2.createAnswer());
  await pc1.setRemoteDescription(pc2.localDescription);

  await sleep(seconds * 1000);
  const s = await inbound(pc2);
  const tx = (await ask(w1, { kind: 'stats' }, 'stats')).transforms;
  const rx = (await ask(w2, { kind: 'stats' }, 'stats')).transforms;
  const video = document.getElementById('remote');
  const result = {
    codec: s.video ? (await pc2.getStats()).get(s.video.codecId)?.mimeType : null,
    framesDecoded: s.video?.framesDecoded ?? 0,
    videoWidth: video.videoWidth,
    audioSamples: s.audio?.totalSamplesReceived ?? 0,
    audioConcealed: s.audio?.concealedSamples ?? 0,
    tx, rx,
  };
  pc1.close(); pc2.close(); w1.terminate(); w2.terminate();
  stream.getTracks().forEach((t) => t.stop());
  return result;
}

window.hush = { vectors, call };
window.hushReady = true;
