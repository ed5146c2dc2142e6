// One participant of tests/browser/relay.test.mjs: the browser API and the relay client from
// web/dist, driven by the Node runner through `window.hushRelay`.
import { HushE2ee, HushError } from '/dist/api/index.js';
import { RelaySession } from '/dist/relay/client.js';

const enc = new TextEncoder();
let session = null;
let e2ee = null;
let closed = null;
let safetyCode = null;
const failures = [];
const errors = [];
const videos = new Map();
const audioReceivers = new Map();

/**
 * Joins `room` with camera and microphone. `keys`: 'exchange' (falls back to 'explicit' with
 * `secret` when this Worker has no key exchange), 'shared' or 'explicit'.
 */
async function join({ url, token, room, keys, secret }) {
  e2ee = await HushE2ee.init();
  e2ee.addEventListener('safetycode', (e) => { safetyCode = e.detail.code; });
  e2ee.addEventListener('decryptfailure', (e) => failures.push(e.detail));
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const publish = { camera: media.getVideoTracks()[0], microphone: media.getAudioTracks()[0] };
  let mode = keys === 'exchange' ? { mode: 'exchange' } : { mode: keys, secret: enc.encode(secret) };
  try {
    session = await RelaySession.join({ url, token, room, e2ee, keys: mode, publish });
  } catch (err) {
    if (!(err instanceof HushError && err.code === 'unsupported')) throw err;
    return { unsupported: true };
  }
  session.addEventListener('close', (e) => { closed = e.detail; });
  session.addEventListener('error', (e) => { errors.push(e.detail); });
  session.addEventListener('track', (e) => {
    const t = e.detail;
    const who = t.participant ?? 'unknown';
    if (t.track.kind === 'video') {
      const v = document.createElement('video');
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
  });
  return { you: session.you, senderIndex: session.senderIndex, mode: mode.mode };
}

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
    encrypted: self?.ok ?? 0, safetyCode, closed, failureEvents: failures.length, ignored: session?.ignored ?? {}, errors: errors.slice(0, 5),
  };
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
  return out;
}

function leave() {
  session?.leave();
  e2ee?.close();
}

window.hushRelay = { join, state, leave, rtp };
window.hushRelayReady = true;
