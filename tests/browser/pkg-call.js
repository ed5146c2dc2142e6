// A two-peer-connection E2EE call in one page that uses only the public API of the npm package
// `hush-e2ee` (passed in as `HushE2ee`). Shared by the Vite app and the plain-module page of
// tests/browser/pkg.test.mjs. Explicit keys: one KID and key per stream context, as hush-keys
// lays them out, so audio and video never share a counter space.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function keyFor(ctx, fill) {
  return new Uint8Array(16).fill(fill + ctx);
}

/**
 * pc1 (camera + microphone) -> pc2, each side with its own HushE2ee (its own Worker).
 * `wrongKey`: the receiver gets keys from another secret. `legacy`: createEncodedStreams.
 */
export async function call(HushE2ee, { wrongKey = false, legacy = false, seconds = 4 } = {}) {
  const tx = await HushE2ee.init({ forceLegacy: legacy });
  const rx = await HushE2ee.init({ forceLegacy: legacy });
  const failures = [];
  rx.addEventListener('decryptfailure', (e) => failures.push(e.detail));
  for (const ctx of [0, 1]) {
    await tx.setSendKey(BigInt(0x10 | ctx), keyFor(ctx, 1), ctx);
    // Bound to alice: the receivers attached for her open frames under it.
    await rx.addRecvKey(BigInt(0x10 | ctx), keyFor(ctx, wrongKey ? 101 : 1), { participant: 'alice' });
  }
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc1 = new RTCPeerConnection(tx.peerConnectionConfig());
  const pc2 = new RTCPeerConnection(rx.peerConnectionConfig());
  pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
  pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
  for (const track of stream.getTracks()) {
    const t = pc1.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    tx.attachSender(t.sender, { source: track.kind === 'audio' ? 'microphone' : 'camera' });
  }
  const video = document.createElement('video');
  video.autoplay = true; video.muted = true; video.playsInline = true;
  document.body.append(video);
  pc2.ontrack = (e) => {
    // Answerer: ontrack runs inside setRemoteDescription, before the answer is set.
    rx.attachReceiver(e.receiver, { participant: 'alice' });
    if (e.track.kind === 'video') video.srcObject = new MediaStream([e.track]);
  };
  await pc1.setLocalDescription(await pc1.createOffer());
  await pc2.setRemoteDescription(pc1.localDescription);
  await pc2.setLocalDescription(await pc2.createAnswer());
  await pc1.setRemoteDescription(pc2.localDescription);
  await sleep(seconds * 1000);
  const stats = await rx.getStats();
  await sleep(1000);
  const stats2 = await rx.getStats();
  const alice = stats2.find((p) => p.participant === 'alice');
  const self = (await tx.getStats()).find((p) => p.participant === 'self');
  const result = {
    legacy: rx.usesLegacyStreams,
    decrypted: alice?.ok ?? 0,
    dropped: alice?.dropped ?? {},
    framesDecoded: alice?.framesDecoded ?? 0,
    framesDecodedEarlier: stats.find((p) => p.participant === 'alice')?.framesDecoded ?? 0,
    bitrate: alice?.bitrate ?? 0,
    videoWidth: video.videoWidth,
    encrypted: self?.ok ?? 0,
    failureEvents: failures.length,
    firstFailure: failures[0] ?? null,
  };
  pc1.close(); pc2.close(); tx.close(); rx.close();
  stream.getTracks().forEach((t) => t.stop());
  video.remove();
  return result;
}

/**
 * Receivers whose transceivers were stopped are forgotten by `getStats` once it has reported
 * them: 10 receivers attached and stopped, then `getStats` asks none of them for RTP stats.
 */
export async function pruned(HushE2ee) {
  const rx = await HushE2ee.init();
  const pc = new RTCPeerConnection(rx.peerConnectionConfig());
  const transceivers = [];
  for (let i = 0; i < 10; i++) {
    const t = pc.addTransceiver(i % 2 ? 'video' : 'audio', { direction: 'recvonly' });
    rx.attachReceiver(t.receiver, { participant: `p${i}` });
    transceivers.push(t);
  }
  const real = RTCRtpReceiver.prototype.getStats;
  let asked = 0;
  RTCRtpReceiver.prototype.getStats = function (...args) { asked++; return real.apply(this, args); };
  try {
    await rx.getStats();
    const live = asked;
    for (const t of transceivers) t.stop();
    await rx.getStats(); // reports them one last time
    asked = 0;
    await rx.getStats();
    return { live, afterStop: asked };
  } finally {
    RTCRtpReceiver.prototype.getStats = real;
    pc.close();
    rx.close();
  }
}

/** Methods called before init must throw a clear `not_initialized` error. */
export async function beforeInit(HushE2ee) {
  try {
    await new HushE2ee().setKey(1n, new Uint8Array(16));
    return 'no error';
  } catch (e) {
    return `${e.name}:${e.code}`;
  }
}
