// One participant of tests/browser/relay.test.mjs: the browser API and the relay client from
// web/dist, driven by the Node runner through `window.hushRelay`.
import { HushE2ee, HushError } from '/dist/api/index.js';
import { RelaySession } from '/dist/relay/client.js';

const enc = new TextEncoder();
let session = null;
let e2ee = null;
let closed = null;
let safetyCode = null;
/** Every key exchange event, in order: `{type, epoch?, code?, t}` (`t`: Date.now()). */
const keyEvents = [];
/** The test Worker (tests/browser/keys.worker.js) when `join` got `testWorker: true`. */
let testWorker = null;
const failures = [];
const errors = [];
const videos = new Map();
/** `reconnecting`, `reconnected` and `icerestart` events of the session, with `t` (Date.now()). */
const connEvents = [];
/** Join timeline (Date.now()): `joinCalled`, `joined`, `connected`, `track:<who>`, `frame:<who>` (first decoded video frame). */
const marks = {};
const mark = (name) => { if (marks[name] === undefined) marks[name] = Date.now(); };
const audioReceivers = new Map();
const videoReceivers = new Map();
/** Each remote participant's video as the relay client gave it (`RemoteTrack`). */
const videoTracks = new Map();
/** Tells the relay `who`'s video is shown at `width` x `height` (RelaySession.setVideoSize). */
function setVideoSize(who, width, height) {
  const t = videoTracks.get(who);
  if (!t) throw new Error(`no video from ${who}`);
  session.setVideoSize(t, width, height);
}

/**
 * Joins `room` with camera and microphone. `keys`: 'exchange' (falls back to 'explicit' with
 * `secret` when this Worker has no key exchange), 'shared' or 'explicit'. `testWorker`: run
 * tests/browser/keys.worker.js (the real Worker plus test-only seal/open messages; the runner
 * must serve it and /web/dist, /web/wasm) instead of /dist/worker.js.
 */
async function join({ url, token, participant, room, keys, secret, testWorker: useTestWorker, unvouched, admitAnyone, listenOnly, reconnect, video, simulcast }) {
  if (useTestWorker) {
    testWorker = new Worker('/keys.worker.js', { type: 'module' });
    e2ee = await HushE2ee.init({ worker: testWorker, wasmUrl: '/web/wasm/hush_wasm_bg.wasm' });
  } else {
    e2ee = await HushE2ee.init();
  }
  e2ee.addEventListener('safetycode', (e) => {
    safetyCode = e.detail.code;
    keyEvents.push({ type: 'safetyCode', code: e.detail.code, t: Date.now() });
  });
  e2ee.addEventListener('keychange', (e) => keyEvents.push({ type: e.detail.type, epoch: e.detail.epoch, t: Date.now() }));
  e2ee.addEventListener('keyerror', (e) => keyEvents.push({ type: 'keyerror', reason: String(e.detail?.reason), t: Date.now() }));
  e2ee.addEventListener('decryptfailure', (e) => failures.push({ ...e.detail, t: Date.now() }));
  // `listenOnly`: publish nothing (a viewer).
  // `video`: camera constraints (e.g. `{ width: 1280, height: 720 }` for three simulcast layers).
  const media = listenOnly ? null : await navigator.mediaDevices.getUserMedia({ audio: true, video: video ?? true });
  const publish = media ? { camera: media.getVideoTracks()[0], microphone: media.getAudioTracks()[0] } : {};
  let mode = keys === 'exchange' ? { mode: 'exchange' } : { mode: keys, secret: enc.encode(secret) };
  // The two-step join: the Worker makes the identity key, the app backend (here the relay's dev
  // endpoints, served same-origin by the runner) vouches for it for this token's participant.
  let vouching = {};
  // `reconnect`: rejoin when the relay is lost, with a fresh dev token (a new participant id,
  // which the vouching below then uses).
  let current = participant;
  const rejoin = reconnect
    ? { reconnect: { token: async () => { const t = await dev('/dev/token', { room }); current = t.participant; return t.token; } } }
    : {};
  // `unvouched`: no attestation, admit anyone; `admitAnyone`: vouched for, but this Worker
  // admits anyone (what a member may do to its own client, e.g. a leaver computing ratchets).
  if (keys === 'exchange' && unvouched) vouching = { insecureUnvouchedMembers: true };
  else if ((keys === 'exchange' || keys === 'shared') && participant) {
    const vouch = (key) => attest(room, current, key);
    vouching = admitAnyone ? { insecureUnvouchedMembers: true, vouch } : { backendKey: await backendKey(), vouch };
  }
  e2ee.addEventListener('memberrefused', (e) => keyEvents.push({ type: 'memberRefused', participant: e.detail.participant, reason: e.detail.reason, t: Date.now() }));
  try {
    mark('joinCalled');
    session = await RelaySession.join({
      url, token, room, e2ee, keys: mode, publish, ...vouching, ...rejoin, ...(simulcast !== undefined ? { simulcast } : {}),
    });
    mark('joined');
    const pc = session.pc;
    const connected = () => { if (pc?.connectionState === 'connected') mark('connected'); };
    pc?.addEventListener('connectionstatechange', connected);
    pc?.addEventListener('iceconnectionstatechange', () => mark(`ice:${pc.iceConnectionState}`));
    pc?.addEventListener('signalingstatechange', () => mark(`sdp:${pc.signalingState}`));
    pc?.addEventListener('icegatheringstatechange', () => mark(`gather:${pc.iceGatheringState}`));
    connected();
    // For the timeline: the first frame each remote sender's transforms decrypted or dropped
    // (Worker counters, polled every 10 ms for the first 5 s).
    const poll = setInterval(async () => {
      if (closed) { clearInterval(poll); return; }
      for (const s of await e2ee.getStats().catch(() => [])) {
        if (s.participant === 'self') continue;
        if (s.ok > 0) mark(`decrypted:${s.participant}`);
        for (const [r, n] of Object.entries(s.dropped)) if (n > 0) mark(`drop:${r}:${s.participant}`);
      }
    }, 10);
    setTimeout(() => clearInterval(poll), 5000);
  } catch (err) {
    if (!(err instanceof HushError && err.code === 'unsupported')) throw err;
    return { unsupported: true };
  }
  session.addEventListener('close', (e) => { closed = e.detail; });
  for (const type of ['reconnecting', 'reconnected', 'icerestart']) {
    session.addEventListener(type, (e) => connEvents.push({ type, ...e.detail, t: Date.now() }));
  }
  session.addEventListener('error', (e) => { errors.push(e.detail); });
  session.addEventListener('track', (e) => {
    const t = e.detail;
    const who = t.participant ?? 'unknown';
    mark(`track:${who}`);
    if (t.track.kind === 'video') {
      const v = document.createElement('video');
      v.requestVideoFrameCallback?.(() => mark(`frame:${who}`));
      v.autoplay = true; v.muted = true; v.playsInline = true;
      v.srcObject = new MediaStream([t.track]);
      document.getElementById('media').append(v);
      videos.set(who, v);
    } else {
      const a = document.createElement('audio');
      a.autoplay = true;
      a.srcObject = new MediaStream([t.track]);
      document.getElementById('media').append(a);
      audioReceivers.set(who, t.receiver);
    }
    if (t.track.kind === 'video') { videoReceivers.set(who, t.receiver); videoTracks.set(who, t); }
  });
  return { you: session.you, senderIndex: session.senderIndex, mode: mode.mode, vouched: Boolean(vouching.vouch) };
}

const b64 = (bytes) => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

async function dev(path, body) {
  const res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${json.error}`);
  return json;
}
/** The dev backend's public key (GET /dev/backend-key). */
const backendKey = async () => unb64((await dev('/dev/backend-key')).backend_key);
/** The dev backend's attestation of `key` for `participant` in `room` (POST /dev/attest). */
const attest = async (room, participant, key) => unb64((await dev('/dev/attest', { room, participant, identity_key: b64(key) })).attestation);

/** Per-remote-participant state: Worker counters, decoder counters, element sizes. */
async function state() {
  const stats = e2ee ? await e2ee.getStats() : [];
  const out = {};
  for (const s of stats) {
    if (s.participant === 'self') continue;
    let samples = 0;
    const rx = audioReceivers.get(s.participant);
    if (rx) (await rx.getStats()).forEach((r) => { if (r.type === 'inbound-rtp') samples += r.totalSamplesReceived ?? 0; });
    out[s.participant] = {
      ok: s.ok, dropped: s.dropped, framesDecoded: s.framesDecoded,
      videoWidth: videos.get(s.participant)?.videoWidth ?? 0, audioSamples: samples,
    };
  }
  const self = stats.find((s) => s.participant === 'self');
  return {
    you: session?.you, members: session ? [...session.members.keys()] : [], remote: out,
    encrypted: self?.ok ?? 0, safetyCode, keyEvents: keyEvents.slice(), closed, connEvents: connEvents.slice(), failureEvents: failures.length, failures: failures.slice(-20), ignored: session?.ignored ?? {}, errors: errors.slice(0, 5),
  };
}

/**
 * Video as received from each remote participant (inbound-rtp: decoded size, frames, freezes,
 * keyframes) and as sent (outbound-rtp per simulcast encoding: rid, size, bytes, why limited).
 */
async function videoStats() {
  const received = {};
  for (const [who, rx] of videoReceivers) {
    (await rx.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      received[who] = {
        width: r.frameWidth ?? 0, height: r.frameHeight ?? 0, framesDecoded: r.framesDecoded ?? 0,
        keyFramesDecoded: r.keyFramesDecoded ?? 0, freezeCount: r.freezeCount ?? 0,
        totalFreezesDuration: r.totalFreezesDuration ?? 0, bytesReceived: r.bytesReceived ?? 0,
        packetsLost: r.packetsLost ?? 0, pliCount: r.pliCount ?? 0, nackCount: r.nackCount ?? 0,
        retransmittedPacketsReceived: r.retransmittedPacketsReceived ?? 0,
      };
    });
  }
  const sent = [];
  (await session?.pc?.getStats())?.forEach((r) => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      sent.push({
        rid: r.rid, width: r.frameWidth ?? 0, height: r.frameHeight ?? 0, bytesSent: r.bytesSent ?? 0, packetsSent: r.packetsSent ?? 0,
        nackCount: r.nackCount ?? 0, retransmittedPacketsSent: r.retransmittedPacketsSent ?? 0, limited: r.qualityLimitationReason, active: r.active,
      });
    }
  });
  return { received, sent };
}

/** RTP-level detail of the connection, for failure messages. */
async function rtp() {
  const out = { transceivers: [], rtp: [] };
  if (!session?.pc) return out;
  for (const t of session.pc.getTransceivers()) out.transceivers.push(`${t.mid}:${t.receiver.track.kind}:${t.direction}/${t.currentDirection}`);
  (await session.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp') out.rtp.push({ in: r.kind, mid: r.mid, packets: r.packetsReceived, frames: r.framesReceived, decoded: r.framesDecoded, keyframes: r.keyFramesDecoded, pli: r.pliCount, nack: r.nackCount });
    if (r.type === 'outbound-rtp') out.rtp.push({ out: r.kind, mid: r.mid, packets: r.packetsSent, frames: r.framesEncoded, pli: r.pliCount, keyframes: r.keyFramesEncoded });
  });
  out.ice = session.pc.iceConnectionState;
  // The candidate pair in use: its local candidate's type and, for TURN, the protocol to it.
  const all = new Map();
  (await session.pc.getStats()).forEach((r) => all.set(r.id, r));
  const transport = [...all.values()].find((r) => r.type === 'transport' && r.selectedCandidatePairId);
  const pair = transport ? all.get(transport.selectedCandidatePairId) : [...all.values()].find((r) => r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded');
  const local = pair ? all.get(pair.localCandidateId) : undefined;
  const remote = pair ? all.get(pair.remoteCandidateId) : undefined;
  out.path = local ? {
    type: local.candidateType, protocol: local.protocol, relayProtocol: local.relayProtocol, address: local.address,
    port: local.port, remoteAddress: remote?.address, remotePort: remote?.port,
  } : null;
  out.setup = /a=setup:(\w+)/.exec(session.pc.currentLocalDescription?.sdp ?? '')?.[1];
  return out;
}

/**
 * Leaves the room (the relay client's clean `leave`). `keepWorker`: keep the Worker and its key
 * session as they are (what a leaver still holds), for `testOpen` afterwards.
 */
function leave({ keepWorker = false } = {}) {
  session?.leave();
  if (!keepWorker) e2ee?.close();
}

/** One test-only request to the test Worker, answered by a message of kind `reply` (5 s at most). */
function ask(message, reply) {
  if (!testWorker) return Promise.reject(new Error('join with testWorker: true first'));
  const w = testWorker;
  return new Promise((resolve, reject) => {
    const onMessage = (e) => {
      if (e.data?.kind !== reply) return;
      clearTimeout(timer);
      w.removeEventListener('message', onMessage);
      resolve(e.data);
    };
    const timer = setTimeout(() => { w.removeEventListener('message', onMessage); reject(new Error(`no ${reply}`)); }, 5000);
    w.addEventListener('message', onMessage);
    w.postMessage(message);
  });
}

/** Test Worker: tells the key ring a send stream of `context` started (it gets that context's key). */
async function testStream(context) {
  await ask({ kind: 'testStream', context }, 'testStreamAck');
}

/**
 * Test Worker: seals `text` (pure SFrame) with the current send key of `context`. Returns
 * `{frame: number[], kid: string, epoch}` (epoch: the KID's low 8 bits) or `{reason}`.
 */
async function testSeal(context, text) {
  const r = await ask({ kind: 'testSeal', context, data: enc.encode(text) }, 'testSealed');
  if (!r.frame) return { reason: r.reason };
  const kid = BigInt(r.kid);
  return { frame: Array.from(r.frame), kid: kid.toString(), epoch: Number(kid & 0xffn) };
}

/** Test Worker: opens `frame` with every receive key the key ring holds: `{text}` or `{reason}`. */
async function testOpen(frame) {
  const r = await ask({ kind: 'testOpen', frame: new Uint8Array(frame) }, 'testOpened');
  return r.data ? { text: new TextDecoder().decode(r.data) } : { reason: r.reason };
}

/**
 * Hands the key session a made-up `participant_joined` (as a relay would send it) with
 * membership sequence `seq`: every member ratchets on a join, so this makes the Worker derive
 * the next epoch from the newest secret it holds. A leaver uses it to compute what it could
 * (joined with `admitAnyone`: a Worker that checks attestations refuses this member).
 */
function fakeJoin(seq, id = 'eve', senderIndex = 1000) {
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
  e2ee.relayEvent({
    v: 1, type: 'participant_joined', seq,
    participant: {
      id, sender_index: senderIndex, join_seq: seq, identity_key: key,
      grants: { publish: true, subscribe: true, moderator: false, record: false },
    },
  });
}

/** The join timeline (`marks`) and the key events, for the join benchmark. */
function timeline() {
  return { marks: { ...marks }, keyEvents: keyEvents.slice() };
}

window.hushRelay = { join, state, leave, timeline, rtp, videoStats, setVideoSize, testStream, testSeal, testOpen, fakeJoin };
window.hushRelayReady = true;
