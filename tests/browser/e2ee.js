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

/**
 * The RFC 9605 vectors of the AES-GCM suites through the WebCrypto path: the AEAD key from
 * `aeadKey` imported into WebCrypto, sealed with the wasm nonce and the vector's AAD, and
 * opened with `Receiver.planOpen` + WebCrypto + `commit`. Then host-sealed frames must equal
 * wasm-sealed ones byte for byte (every layout, H.264 escaping included), and open both ways.
 */
async function hostVectors() {
  await init({ module_or_path: WASM_URL });
  const { HostKeys, HybridSealer, HybridOpener } = await import('/web/dist/hybrid.js');
  const text = await (await fetch('/crates/hush-frame/tests/vectors/rfc9605.json')).text();
  const v = JSON.parse(text.replace(/"(kid|ctr)":\s*(\d+)/g, '"$1":"$2"'));
  const fail = [];
  let sealed = 0, opened = 0, frames = 0;
  for (const s of v.sframe.filter((x) => x.cipher_suite === 4 || x.cipher_suite === 5)) {
    const kid = BigInt(s.kid), ctr = BigInt(s.ctr), base = unhex(s.base_key);
    const raw = wasm.aeadKey(s.cipher_suite, kid, base);
    if (hex(raw) !== s.sframe_key) fail.push(`aeadKey ${s.cipher_suite}`);
    const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    const nonce = wasm.frameNonce(s.cipher_suite, kid, base, ctr);
    const header = wasm.headerEncode(kid, ctr);
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: unhex(s.aad) }, key, unhex(s.pt)));
    if (hex(header) + hex(ct) !== s.ct) fail.push(`webcrypto seal ${s.cipher_suite}`); else sealed++;
    const rx = new wasm.Receiver(s.cipher_suite);
    rx.addKey(kid, base);
    const wire = unhex(s.ct);
    const job = rx.planOpen(0, wire);
    if (!job) { fail.push(`planOpen ${s.cipher_suite}: ${rx.lastError()}`); continue; }
    const aad = new Uint8Array([...job.aad, ...unhex(s.metadata)]);
    if (hex(aad) !== s.aad) fail.push(`planOpen aad ${s.cipher_suite}`);
    if (hex(job.nonce) !== s.nonce) fail.push(`planOpen nonce ${s.cipher_suite}`);
    try {
      const pt = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: job.nonce, additionalData: aad }, key, wire.subarray(job.sealedStart, job.sealedEnd)));
      if (!rx.commit(job)) fail.push(`commit ${s.cipher_suite}`);
      else if (hex(pt) !== s.pt) fail.push(`webcrypto open ${s.cipher_suite}`);
      else opened++;
    } catch { fail.push(`webcrypto open threw ${s.cipher_suite}`); }
    const again = rx.planOpen(0, wire);
    if (again || rx.lastError() !== 'replayed') fail.push(`replay after commit ${s.cipher_suite}`);
  }
  // Host path == wasm path, byte for byte, for every layout; and both open both.
  const frameFor = (layout, n) => {
    const f = new Uint8Array(n).map((_, i) => (i * 37 + 11) & 0xff);
    if (layout === 2) f[0] = 0x10; // VP8 key frame
    if (layout === 4) { f.set([0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x68, 4, 5, 0, 0, 1, 0x65, 0x88, 0, 0, 1, 0, 0, 0]); }
    if (layout === 6) { f.set([0x12, 0x00, 0x32, 0x10]); }
    return f;
  };
  for (const suite of [4, 5]) {
    const base = new Uint8Array(32).fill(3);
    for (const layout of [0, 1, 2, 3, 4, 6]) {
      const keys = new HostKeys(suite);
      const hostTx = new HybridSealer(new wasm.Sender(suite, 9n, base), keys, 0);
      const wasmTx = new wasm.Sender(suite, 9n, base);
      const hostRx = new HybridOpener(new wasm.Receiver(suite), keys, () => base, 0);
      hostRx.receiver.addKey(9n, base);
      const wasmRx = new wasm.Receiver(suite);
      wasmRx.addKey(9n, base);
      for (const n of [40, 3000]) {
        const f = frameFor(layout, n);
        const a = await hostTx.seal(layout, f, base);
        const b = wasmTx.encrypt(layout, f);
        if (!(a instanceof Uint8Array) || hex(a) !== hex(b)) { fail.push(`host seal != wasm seal, suite ${suite} layout ${layout} n ${n}`); continue; }
        const p1 = await hostRx.open(layout, b);
        const p2 = wasmRx.decrypt(layout, a);
        if (!(p1 instanceof Uint8Array) || hex(p1) !== hex(f) || !p2 || hex(p2) !== hex(f)) fail.push(`open suite ${suite} layout ${layout} n ${n}`);
        const bad = b.slice(); bad[bad.length - 1] ^= 1;
        const p3 = await hostRx.open(layout, bad);
        if (p3 instanceof Uint8Array || p3.drop !== 'replayed') fail.push(`replay not refused first, suite ${suite} layout ${layout}`);
        frames++;
      }
      const f = frameFor(layout, 3000);
      const c = wasmTx.encrypt(layout, f);
      const bad = c.slice(); bad[bad.length - 1] ^= 1;
      const p4 = await hostRx.open(layout, bad);
      if (p4 instanceof Uint8Array || p4.drop !== 'auth_failed') fail.push(`tampered not refused, suite ${suite} layout ${layout}: ${JSON.stringify(p4)}`);
      const p5 = await hostRx.open(layout, c);
      if (!(p5 instanceof Uint8Array)) fail.push(`honest frame after a tampered one refused, suite ${suite} layout ${layout}`);
    }
  }
  return { sealed, opened, frames, fail };
}

async function startWorker(extra = {}) {
  const w = new Worker('/web/dist/worker.js', { type: 'module' });
  const ack = new Promise((resolve, reject) => {
    w.onmessage = (e) => (e.data.kind === 'initAck' ? resolve() : reject(new Error(JSON.stringify(e.data))));
  });
  w.postMessage({ kind: 'init', wasmUrl: WASM_URL, suite: 4, ...extra });
  await ack;
  w.onmessage = null;
  w.events = [];
  w.addEventListener('message', (e) => { if (e.data.kind === 'decryptFailure') w.events.push(e.data); });
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
 * Middle steps between the sender's encryption and the network (legacy encoded streams on
 * the sender: worker output -> this step -> packetizer). Each returns the bytes to send.
 */
const MIDDLE = {
  /** Flips one byte (the last, in the tag) of every video frame. */
  tamper(kind, data, st) {
    if (kind !== 'video') return data;
    const b = new Uint8Array(data.slice(0));
    b[b.length - 1] ^= 0x01;
    st.changed++;
    return b.buffer;
  },
  /** Sends every 10th audio frame's predecessor again in its place. */
  replay(kind, data, st) {
    if (kind !== 'audio') return data;
    st.seen++;
    const prev = st.prev;
    st.prev = data.slice(0);
    if (prev && st.seen % 10 === 0) { st.changed++; return prev; }
    return data;
  },
  /** As `replay`, with the copy's last byte flipped. */
  replayAltered(kind, data, st) {
    const out = MIDDLE.replay(kind, data, st);
    if (out === data) return data;
    const b = new Uint8Array(out.slice(0));
    b[b.length - 1] ^= 0x01;
    return b.buffer;
  },
  /** As `replay`, for video frames. */
  replayVideo(kind, data, st) {
    return MIDDLE.replay(kind === 'video' ? 'audio' : 'video', data, st);
  },
};

/**
 * A call pc1 -> pc2 with E2EE on both sides. `recvKey` picks the receiver's key ('same' or
 * 'wrong'); `codec` is the video MIME type to negotiate; `middle` ('tamper' | 'replay') puts a
 * step after the sender's encryption (the sender then uses the legacy encoded streams);
 * `rotateAt` (ms) switches the sender to KID 2 mid-call, with the receiver holding both KIDs;
 * `worker` is passed to both Workers' init. The receiver's transforms are attached for
 * participant `pc1`; `recvOwner` is the participant its keys are bound to (`pc1`: the sender).
 */
async function call({ recvKey = 'same', codec = 'video/VP8', seconds = 5, middle = null, rotateAt = null, worker = {}, recvOwner = 'pc1' } = {}) {
  const key = new Uint8Array(16).fill(7);
  const key2 = new Uint8Array(16).fill(6);
  const wrong = new Uint8Array(16).fill(8);
  const w1 = await startWorker(worker);
  const w2 = await startWorker(worker);
  await ask(w1, { kind: 'setSendKey', kid: 1n, key }, 'ack');
  await ask(w2, { kind: 'addRecvKey', kid: 1n, key: recvKey === 'same' ? key : wrong, participant: recvOwner }, 'ack');
  if (rotateAt !== null) await ask(w2, { kind: 'addRecvKey', kid: 2n, key: key2, participant: recvOwner }, 'ack');

  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc1 = new RTCPeerConnection({ encodedInsertableStreams: middle !== null });
  const pc2 = new RTCPeerConnection();
  pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
  pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
  const mid = { changed: 0, seen: 0, prev: null };
  for (const track of stream.getTracks()) {
    const sender = pc1.addTrack(track, stream);
    const options = { side: 'send', kind: track.kind, id: `pc1-${track.kind}` };
    if (middle === null) {
      sender.transform = new RTCRtpScriptTransform(w1, options);
    } else {
      // Worker encrypts into `tap`; the page alters frames from `tap` on their way out.
      const { readable, writable } = sender.createEncodedStreams();
      const tap = new TransformStream();
      w1.postMessage({ readable, writable: tap.writable, options }, [readable, tap.writable]);
      tap.readable.pipeThrough(new TransformStream({
        transform(frame, c) { frame.data = MIDDLE[middle](track.kind, frame.data, mid); c.enqueue(frame); },
      })).pipeTo(writable).catch(() => {});
    }
    if (track.kind === 'video') {
      const t = pc1.getTransceivers().find((x) => x.sender === sender);
      const caps = RTCRtpSender.getCapabilities('video').codecs;
      const pref = caps.filter((c) => c.mimeType.toLowerCase() === codec.toLowerCase());
      if (!pref.length) throw new Error(`codec ${codec} not offered`);
      t.setCodecPreferences([...pref, ...caps.filter((c) => !pref.includes(c))]);
    }
  }
  const video = document.getElementById('remote');
  pc2.ontrack = (e) => {
    // Answerer: ontrack fires in setRemoteDescription, before our setLocalDescription.
    e.receiver.transform = new RTCRtpScriptTransform(w2, { side: 'recv', kind: e.track.kind, id: `pc2-${e.track.kind}`, participant: 'pc1' });
    const el = document.getElementById(e.track.kind === 'video' ? 'remote' : 'remoteAudio');
    el.srcObject = new MediaStream([e.track]);
  };
  // Longest gap between rendered frames, from the first one on.
  const gaps = { last: null, max: 0, frames: 0, maxAt: null };
  let watching = true;
  const onFrame = (now) => {
    if (gaps.last !== null && now - gaps.last > gaps.max) { gaps.max = now - gaps.last; gaps.maxAt = now; }
    gaps.last = now; gaps.frames++;
    if (watching) video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  await pc1.setLocalDescription(await pc1.createOffer());
  await pc2.setRemoteDescription(pc1.localDescription);
  await pc2.setLocalDescription(await pc2.createAnswer());
  await pc1.setRemoteDescription(pc2.localDescription);

  const t0 = performance.now();
  let rotatedAt = null;
  let afterRotate = null;
  if (rotateAt !== null) {
    await sleep(rotateAt);
    await ask(w1, { kind: 'setSendKey', kid: 2n, key: key2 }, 'ack');
    rotatedAt = performance.now();
    await sleep(1500);
    // Every frame now comes under KID 2: dropping KID 1 must cost nothing from here on.
    afterRotate = (await ask(w2, { kind: 'stats' }, 'stats')).transforms.map((t) => ({ ...t, dropped: { ...t.dropped } }));
    await ask(w2, { kind: 'removeRecvKey', kid: 1n }, 'ack');
  }
  await sleep(Math.max(0, seconds * 1000 - (performance.now() - t0)));
  watching = false;
  const s = await inbound(pc2);
  const tx = (await ask(w1, { kind: 'stats' }, 'stats')).transforms;
  const rx = (await ask(w2, { kind: 'stats' }, 'stats')).transforms;
  const result = {
    codec: s.video ? (await pc2.getStats()).get(s.video.codecId)?.mimeType : null,
    framesDecoded: s.video?.framesDecoded ?? 0,
    videoWidth: video.videoWidth,
    audioSamples: s.audio?.totalSamplesReceived ?? 0,
    audioConcealed: s.audio?.concealedSamples ?? 0,
    maxGapMs: Math.round(gaps.max),
    gapFromRotationMs: rotatedAt !== null && gaps.maxAt !== null ? Math.round(gaps.maxAt - rotatedAt) : null,
    renderedFrames: gaps.frames,
    middleChanged: mid.changed,
    events: w2.events,
    afterRotate,
    tx, rx,
  };
  pc1.close(); pc2.close(); w1.terminate(); w2.terminate();
  stream.getTracks().forEach((t) => t.stop());
  video.srcObject = null;
  return result;
}

/**
 * One side of a call between two browsers: one peer connection, E2EE on every sender and
 * receiver, signaling (whole SDP, ICE gathered first) carried by the test runner.
 */
async function peer({ sendKid, recvKid }) {
  const key = new Uint8Array(16).fill(7);
  const w = await startWorker();
  await ask(w, { kind: 'setSendKey', kid: BigInt(sendKid), key }, 'ack');
  await ask(w, { kind: 'addRecvKey', kid: BigInt(recvKid), key, participant: 'remote' }, 'ack');
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection();
  const attached = new Set();
  const recv = (receiver, kind) => {
    if (attached.has(receiver)) return; // Firefox fires ontrack during setRemoteDescription
    attached.add(receiver);
    receiver.transform = new RTCRtpScriptTransform(w, { side: 'recv', kind, id: `recv-${kind}`, participant: 'remote' });
  };
  const send = (sender, kind) => { sender.transform = new RTCRtpScriptTransform(w, { side: 'send', kind, id: `send-${kind}` }); };
  pc.ontrack = (e) => {
    recv(e.receiver, e.track.kind);
    if (e.track.kind === 'video') document.getElementById('remote').srcObject = new MediaStream([e.track]);
    else document.getElementById('remoteAudio').srcObject = new MediaStream([e.track]);
  };
  const gathered = () => new Promise((r) => {
    if (pc.iceGatheringState === 'complete') r();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
    setTimeout(r, 3000);
  });
  return {
    async offer() {
      for (const track of stream.getTracks()) {
        const t = pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
        send(t.sender, track.kind);
        recv(t.receiver, track.kind);
      }
      await pc.setLocalDescription(await pc.createOffer());
      await gathered();
      return pc.localDescription.sdp;
    },
    async answer(sdp) {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      for (const t of pc.getTransceivers()) {
        const kind = t.receiver.track.kind;
        recv(t.receiver, kind);
        const track = stream.getTracks().find((x) => x.kind === kind);
        await t.sender.replaceTrack(track);
        t.sender.setStreams?.(stream);
        t.direction = 'sendrecv';
        send(t.sender, kind);
      }
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered();
      return pc.localDescription.sdp;
    },
    async accept(sdp) { await pc.setRemoteDescription({ type: 'answer', sdp }); },
    async result() {
      const s = await inbound(pc);
      const stats = (await ask(w, { kind: 'stats' }, 'stats')).transforms;
      const out = {
        framesDecoded: s.video?.framesDecoded ?? 0,
        videoWidth: document.getElementById('remote').videoWidth,
        audioSamples: s.audio?.totalSamplesReceived ?? 0,
        stats,
      };
      pc.close(); w.terminate(); stream.getTracks().forEach((t) => t.stop());
      return out;
    },
  };
}

let current = null;
window.hush = {
  vectors, hostVectors, call,
  async peer(o) { current = await peer(o); },
  offer: () => current.offer(),
  answer: (sdp) => current.answer(sdp),
  accept: (sdp) => current.accept(sdp),
  result: () => current.result(),
};
window.hushReady = true;
