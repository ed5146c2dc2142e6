// Page side of the key-exchange browser test: several real Workers (each its own wasm
// hush-keys session) and a fake relay in this page that sequences membership events, forwards
// e2ee messages with `from` and sequences rekey requests, as the relay contract says. The page
// also plays the app backend: an Ed25519 key (WebCrypto) that vouches for each honest member's
// identity key (hush_keys::Attestation), which the members check. The Node runner
// (keys.test.mjs) calls `window.keys`.
const WASM_URL = '/web/wasm/hush_wasm_bg.wasm';
const ROOM = 'keys-room';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64 = (u8) => btoa(String.fromCharCode(...u8));

const enc = new TextEncoder();

/**
 * An app backend: an Ed25519 key pair; `attest(name, key)` signs hush_keys::Attestation's
 * message ("hush attestation v1" || u8 len || room || u8 len || participant || key || be64
 * expiry) and returns the wire form, be64(expiry) || signature (72 bytes).
 */
async function backend() {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  async function attest(name, key) {
    const expiry = new Uint8Array(8);
    new DataView(expiry.buffer).setBigUint64(0, BigInt(Math.floor(Date.now() / 1000) + 3600));
    const [r, p] = [enc.encode(ROOM), enc.encode(name)];
    const msg = new Uint8Array([...enc.encode('hush attestation v1'), r.length, ...r, p.length, ...p, ...key, ...expiry]);
    const sig = new Uint8Array(await crypto.subtle.sign('Ed25519', pair.privateKey, msg));
    return new Uint8Array([...expiry, ...sig]);
  }
  return { publicKey, attest };
}

/** One member: a Worker, its events, and a one-at-a-time request helper. */
class Member {
  constructor(relay, name) {
    this.relay = relay;
    this.name = name;
    this.events = [];
    /** `decryptFailure` events of the Worker's receive transforms. */
    this.failures = [];
    /** `encryptFailure` events of its send transforms. */
    this.sendFailures = [];
    this.pending = null;
    this.worker = new Worker('./keys.worker.js', { type: 'module' });
    this.worker.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    switch (m.kind) {
      case 'relaySend': this.relay.fromClient(this, m.message); return;
      case 'keyEvent': this.events.push(m.event); return;
      case 'decryptFailure': this.failures.push(m); return;
      case 'encryptFailure': this.sendFailures.push(m); return;
      default:
        if (this.pending && this.pending.kind === m.kind) { const p = this.pending; this.pending = null; p.resolve(m); }
        else if (m.kind === 'error') this.events.push({ type: 'workerError', detail: m });
    }
  }

  /** Sends `msg` and waits for the reply of kind `kind` (bounded). */
  ask(msg, kind) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no ${kind}`)), 5000);
      this.pending = { kind, resolve: (m) => { clearTimeout(t); resolve(m); } };
      this.worker.postMessage(msg);
    });
  }

  lastOf(type, field) {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i].type === type) return this.events[i][field];
    return undefined;
  }

  get switched() { return this.lastOf('switched', 'epoch'); }
  /** The code shown now: none while the round of the latest membership change is pending. */
  get code() {
    for (let i = this.events.length - 1; i >= 0; i--) {
      if (this.events[i].type === 'safetyCodePending') return undefined;
      if (this.events[i].type === 'safetyCode') return this.events[i].code;
    }
    return undefined;
  }
  errors() { return this.events.filter((e) => e.type === 'error').map((e) => e.reason); }

  async seal(text, layout = 0) {
    const r = await this.ask({ kind: 'testSeal', context: 0, layout, data: new TextEncoder().encode(text) }, 'testSealed');
    if (!r.frame) throw new Error(`${this.name}: ${r.reason}`);
    return r;
  }

  /** Starts a receive transform in this Worker: for `participant`, or (undefined) an unattributed one. */
  async track(id, participant) {
    await this.ask({ kind: 'testTrack', id, participant }, 'testTrackAck');
  }

  /** Starts a send transform (the Worker's real one) for `context`. */
  async sendTrack(id, context = 0) {
    await this.ask({ kind: 'testTrack', id, side: 'send', context }, 'testTrackAck');
  }

  /** The Worker's stats of transform `id`. */
  async trackStats(id) {
    return (await this.ask({ kind: 'stats' }, 'stats')).transforms.find((t) => t.id === id);
  }

  /** Feeds `frames` to transform `id`; resolves (bounded) with its stats once it handled them. */
  async feed(id, frames) {
    const before = (await this.trackStats(id))?.frames ?? 0;
    await this.ask({ kind: 'testFeed', id, frames }, 'testFed');
    const until = performance.now() + 3000;
    for (;;) {
      const s = await this.trackStats(id);
      const handled = s ? s.ok + Object.values(s.dropped).reduce((a, b) => a + b, 0) : 0;
      if ((s && s.frames >= before + frames.length && handled >= s.frames) || performance.now() > until) return s;
      await sleep(20);
    }
  }

  /** What transform `id` let through so far, as text (padding trimmed). */
  async taken(id) {
    const r = await this.ask({ kind: 'testTaken', id }, 'testTook');
    return r.frames.map((f) => new TextDecoder().decode(f).trim());
  }

  async open(frame) {
    const r = await this.ask({ kind: 'testOpen', frame }, 'testOpened');
    return r.data ? { ok: true, text: new TextDecoder().decode(r.data) } : { ok: false, reason: r.reason };
  }
}

/** The fake relay: one ordered log per room, e2ee to one named member, rekey sequencing. */
class Relay {
  /**
   * `backend`: the app backend honest members trust (their Workers get its key and the relay
   * announces its attestations); `null`: every member runs with insecureUnvouchedMembers.
   */
  constructor(backend) {
    this.backend = backend;
    /** Envelopes (e2ee) the members sealed, by recipient. */
    this.sealedTo = {};
    this.seq = 0;
    this.nextIndex = 1;
    this.present = [];
    this.all = new Map();
    this.rekeys = 0;
    /** `(to, from) => bool`: e2ee messages to hold back instead of delivering (`held`). */
    this.withhold = null;
    this.held = [];
  }

  /** Delivers what `withhold` held back, in order, and stops holding. */
  release() {
    this.withhold = null;
    for (const [to, event] of this.held.splice(0)) if (this.present.includes(to)) this.deliver(to, event);
  }

  info(m) {
    return { id: m.name, sender_index: m.index, join_seq: m.joinSeq, identity_key: m.identityKey,
      ...(m.attestation ? { attestation: m.attestation } : {}),
      grants: { publish: true, subscribe: true, moderator: false, record: false } };
  }

  /** Delivers a relay message to a member's Worker, as the page would (async, in order). */
  deliver(m, event) { m.worker.postMessage({ kind: 'relayEvent', event }); }

  /**
   * A member joins. `ghost`: a member the relay made up (its own Worker, admitting anyone),
   * announced with no attestation (`'none'`) or one signed by a key that is not the backend's
   * (`'forged'`). `hide`: names the relay leaves out of the newcomer's snapshot.
   */
  async join(name, { ghost, hide = [] } = {}) {
    const m = new Member(this, name);
    this.all.set(name, m);
    await m.ask({ kind: 'init', wasmUrl: WASM_URL, suite: 4 }, 'initAck');
    const membership = this.backend && !ghost ? { backendKey: this.backend.publicKey } : { insecureUnvouchedMembers: true };
    const id = await m.ask({ kind: 'keysStart', mode: 'exchange', ...membership }, 'keysIdentity');
    m.identityKey = b64(id.identityKey);
    m.identityBytes = id.identityKey.length;
    if (this.backend && !ghost) m.attestation = b64(await this.backend.attest(name, id.identityKey));
    if (ghost === 'forged') m.attestation = b64(await (await backend()).attest(name, id.identityKey));
    await m.ask({ kind: 'testStream', context: 0 }, 'testStreamAck');
    m.index = this.nextIndex++;
    m.joinSeq = ++this.seq;
    this.deliver(m, { v: 1, type: 'joined', you: name, sender_index: m.index, join_seq: m.joinSeq, room: ROOM,
      locked: false, grants: { publish: true, subscribe: true, moderator: false, record: false },
      participants: this.present.filter((p) => !hide.includes(p.name)).map((p) => this.info(p)), tracks: [] });
    for (const p of this.present) this.deliver(p, { v: 1, type: 'participant_joined', seq: m.joinSeq, participant: this.info(m) });
    this.present.push(m);
    return m;
  }

  leave(name) {
    const m = this.all.get(name);
    this.present = this.present.filter((p) => p !== m);
    const seq = ++this.seq;
    for (const p of this.present) this.deliver(p, { v: 1, type: 'participant_left', seq, participant: name, sender_index: m.index, reason: 'left' });
  }

  fromClient(from, msg) {
    if (!this.present.includes(from)) return;
    if (msg.v !== 1) return;
    if (msg.type === 'e2ee') {
      this.sealedTo[msg.to] = (this.sealedTo[msg.to] ?? 0) + 1;
      const to = this.present.find((p) => p.name === msg.to);
      if (to && this.withhold?.(msg.to, from.name)) {
        this.held.push([to, { v: 1, type: 'e2ee', from: from.name, payload: msg.payload }]);
        return;
      }
      if (to) setTimeout(() => this.deliver(to, { v: 1, type: 'e2ee', from: from.name, payload: msg.payload }), Math.random() * 20);
    } else if (msg.type === 'e2ee_broadcast') {
      // Switch notices and safety-code commits and reveals: to every other member (no secret).
      for (const to of this.present.filter((p) => p !== from)) {
        setTimeout(() => this.deliver(to, { v: 1, type: 'e2ee', from: from.name, payload: msg.payload }), Math.random() * 20);
      }
    } else if (msg.type === 'rekey') {
      this.rekeys++;
      const seq = ++this.seq;
      // The point names who asked: a member's request is a ratchet, the committer's a fresh epoch.
      for (const p of this.present) this.deliver(p, { v: 1, type: 'rekey', seq, by: [from.name] });
    }
  }

  /**
   * Waits (bounded) until every present member sends on `epoch`, then (up to 3 s more) until
   * each shows a safety code: the commit-then-reveal round follows the epoch.
   */
  async settle(epoch, ms = 8000) {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      if (this.present.every((p) => p.switched === epoch)) {
        const codes = performance.now() + 3000;
        while (performance.now() < codes && !this.present.every((p) => p.code !== undefined)) await sleep(25);
        return true;
      }
      await sleep(25);
    }
    return false;
  }
}

async function run() {
  const out = {};
  const relay = new Relay(await backend());
  const names = ['alice', 'bob', 'carol', 'dave'];
  for (const n of names) await relay.join(n);
  out.identityBytes = [...relay.all.values()].map((m) => m.identityBytes);
  out.settled = await relay.settle(relay.seq);
  const members = relay.present;
  out.epochs = members.map((m) => m.switched);
  out.codes = members.map((m) => m.code);
  out.installed = members.map((m) => m.lastOf('epoch', 'epoch'));

  // (b) every member's frames open at every other member.
  out.frames = [];
  for (const a of members) {
    const sealed = await a.seal(`hello from ${a.name}`);
    for (const b of members) {
      if (a === b) continue;
      const r = await b.open(sealed.frame);
      out.frames.push({ from: a.name, to: b.name, ok: r.ok && r.text === `hello from ${a.name}`, reason: r.reason });
    }
  }

  out.attribution = await attribution(relay);

  // (d) a malformed e2ee payload (and a non-base64 one) is refused with a reason, changes nothing.
  const bob = relay.all.get('bob');
  const before = { epoch: bob.switched, code: bob.code, events: bob.events.length };
  relay.deliver(bob, { v: 1, type: 'e2ee', from: 'alice', payload: b64(new Uint8Array([1, 2, 3])) });
  relay.deliver(bob, { v: 1, type: 'e2ee', from: 'alice', payload: '%%%not base64' });
  relay.deliver(bob, { v: 1, type: 'e2ee', from: 'alice', payload: b64(new Uint8Array(99).fill(9)) });
  await sleep(300);
  const fresh = bob.events.slice(before.events);
  out.malformed = { refusals: fresh.filter((e) => e.type === 'error').map((e) => e.reason),
    others: fresh.filter((e) => e.type !== 'error'), epochAfter: bob.switched, codeAfter: bob.code, before };
  const alice = relay.all.get('alice');
  const stillOk = await bob.open((await alice.seal('after junk')).frame);
  out.malformed.stillDecrypts = stillOk.ok;

  // (c) carol leaves: the others move to a fresh epoch; carol's keys open none of its frames.
  const carol = relay.all.get('carol');
  const codeBefore = alice.code;
  // The key bytes bob's Worker holds now: once replaced or removed they must be zeroed.
  await bob.ask({ kind: 'testKeyHold', context: 0 }, 'testKeyHoldAck');
  relay.leave('carol');
  const leaveSeq = relay.seq;
  out.leave = { settled: await relay.settle(leaveSeq), epochs: relay.present.map((m) => m.switched) };
  out.leave.codes = relay.present.map((m) => m.code);
  out.leave.codeChanged = alice.code !== codeBefore;
  const after = await alice.seal('after carol left');
  out.leave.kid = String(after.kid);
  out.leave.bob = await bob.open(after.frame);
  out.leave.dave = await relay.all.get('dave').open(after.frame);
  out.leave.carol = await carol.open(after.frame);
  out.leave.carolEpoch = carol.switched;

  // Bob's encryptor nears its usage limit: his session asks the relay for a rekey (relaySend
  // `rekey`), the relay sequences it, the committer draws a fresh epoch for everyone.
  const rk = relay.seq + 1;
  await bob.ask({ kind: 'testUsageLimit', context: 0 }, 'testUsageLimitAck');
  out.rekey = { settled: await relay.settle(rk), requests: relay.rekeys, sameCode: relay.present.every((m) => m.code === alice.code) };
  const r2 = await alice.seal('after rekey');
  out.rekey.bob = await bob.open(r2.frame);
  out.rekey.carol = await carol.open(r2.frame);
  out.wiped = await bob.ask({ kind: 'testKeyHeld', context: 0 }, 'testKeyHeldReport');

  out.errors = Object.fromEntries([...relay.all.values()].map((m) => [m.name, m.errors()]));
  for (const m of relay.all.values()) m.worker.terminate();
  return out;
}

/**
 * Frames on tracks, through bob's real receive transforms (the Worker's own attach path, audio
 * frames, Opus layout; the large ones through WebCrypto). The relay records alice's frames and
 * (h) puts them on the track it says is carol's, then (i) replays them on a second track of
 * alice's. Also: carol's own frames on carol's track, alice's on alice's, fresh frames on the new
 * track, and a track attached without a participant: it opens no member's frames (every key of
 * the exchange has an owner), only those under a key the page added without one.
 */
async function attribution(relay) {
  const [alice, bob, carol] = ['alice', 'bob', 'carol'].map((n) => relay.all.get(n));
  // `n` frames of `who`, every other one large (WebCrypto path on the receiving side).
  const frames = async (who, tag, n) => {
    const out = [];
    for (let i = 0; i < n; i++) out.push((await who.seal(`${tag} ${i}`.padEnd(i % 2 ? 1500 : 40), 1)).frame);
    return out;
  };
  const recorded = await frames(alice, 'alice', 4);
  const carols = await frames(carol, 'carol', 2);
  const out = {};
  await bob.track('as-carol', 'carol');
  await bob.track('as-alice', 'alice');
  out.onCarol = await bob.feed('as-carol', recorded);
  out.carolOwn = await bob.feed('as-carol', carols);
  out.carolTaken = await bob.taken('as-carol');
  out.onAlice = await bob.feed('as-alice', recorded);
  await bob.track('as-alice-2', 'alice');
  out.replayed = await bob.feed('as-alice-2', recorded);
  out.fresh = await bob.feed('as-alice-2', await frames(alice, 'alice fresh', 2));
  out.alice2Taken = await bob.taken('as-alice-2');
  await bob.track('unattributed');
  out.unattributed = await bob.feed('unattributed', [...await frames(alice, 'alice unattributed', 1), ...await frames(carol, 'carol unattributed', 1)]);
  // A key the page adds without a participant opens frames there (and only there).
  const kid = 0xabcdefn;
  const key = new Uint8Array(16).fill(5);
  await bob.ask({ kind: 'addRecvKey', kid, key }, 'ack');
  const own = (await alice.ask({ kind: 'testSealWith', kid, key, data: new TextEncoder().encode('unowned key') }, 'testSealed')).frame;
  out.unowned = await bob.feed('unattributed', [own]);
  out.unownedTaken = await bob.taken('unattributed');
  out.unownedOnAlice = await bob.feed('as-alice', [own]);
  out.failures = bob.failures.map(({ id, participant, reason, total }) => ({ id, participant, reason, total }));
  return out;
}

/**
 * The relay adds members of its own: `ghost` (no attestation) and `forger` (an attestation
 * signed by a key that is not the backend's), each a real Worker the relay controls. `vouched`:
 * alice and bob check attestations with the backend's key; otherwise they run with
 * insecureUnvouchedMembers (the attack this closes). Reports refusals, envelopes per
 * recipient, codes, and which frames open where.
 */
async function ghosts(vouched) {
  const relay = new Relay(vouched ? await backend() : null);
  const alice = await relay.join('alice');
  const bob = await relay.join('bob');
  const honest = [alice, bob];
  await relay.settle(relay.seq);
  await relay.join('ghost', { ghost: 'none' });
  await relay.join('forger', { ghost: 'forged' });
  // Let every envelope and refusal land: honest members agree and nothing moves for 500 ms.
  const snapshot = () => JSON.stringify(honest.map((m) => [m.switched, m.code, m.events.length]));
  let last = '';
  for (let i = 0; i < 80; i++) {
    await sleep(100);
    const now = snapshot();
    if (now === last && alice.switched !== undefined && alice.switched === bob.switched && alice.code === bob.code) break;
    last = now;
  }
  await sleep(400);
  const out = {
    refused: Object.fromEntries(honest.map((m) => [m.name, m.events.filter((e) => e.type === 'memberRefused')
      .map((e) => `${e.participant}:${e.reason}`).sort()])),
    sealedTo: relay.sealedTo,
    epochs: honest.map((m) => m.switched),
    codes: honest.map((m) => m.code),
  };
  const a = await alice.seal('alice after the ghosts');
  const b = await bob.seal('bob after the ghosts');
  out.bobOpensAlice = (await bob.open(a.frame)).ok;
  out.aliceOpensBob = (await alice.open(b.frame)).ok;
  out.ghostOpensAlice = await relay.all.get('ghost').open(a.frame);
  out.forgerOpensAlice = await relay.all.get('forger').open(a.frame);
  out.errors = Object.fromEntries(honest.map((m) => [m.name, m.errors()]));
  for (const m of relay.all.values()) m.worker.terminate();
  return out;
}

/**
 * Two send transforms on bob's microphone (a replaced track): the first stops, then carol
 * leaves. Bob's remaining transform must seal under the epoch that excludes carol, not freeze
 * on the key carol holds.
 */
async function twoTransforms() {
  const relay = new Relay(await backend());
  const alice = await relay.join('alice');
  const bob = await relay.join('bob');
  await relay.join('carol');
  await relay.settle(relay.seq);
  await bob.ask({ kind: 'testStream', context: 0 }, 'testStreamAck'); // a second transform
  await bob.ask({ kind: 'testStreamStop', context: 0 }, 'testStreamStopAck'); // the first ends
  relay.leave('carol');
  const leaveSeq = relay.seq;
  const settled = await relay.settle(leaveSeq);
  const b = await bob.seal('bob after carol left');
  const out = {
    settled, leaveSeq,
    kidEpoch: Number(BigInt(b.kid) & 0xffn),
    aliceOpens: (await alice.open(b.frame)).ok,
    carolOpens: (await relay.all.get('carol').open(b.frame)).ok,
  };
  for (const m of relay.all.values()) m.worker.terminate();
  return out;
}

/**
 * (l) A relay that withholds the envelope bob needs after carol leaves: alice (the committer)
 * and bob hold the epoch carol knows. Bob's real send transform goes on sealing until the stall
 * deadline (2 s after the leave), then his Worker reports keyAwaited and drops every frame
 * (no_key) instead of sealing under a key carol holds. When the relay finally delivers, bob
 * installs the new epoch and sends again; carol opens none of it.
 */
async function stall() {
  const relay = new Relay(await backend());
  const alice = await relay.join('alice');
  const bob = await relay.join('bob');
  const carol = await relay.join('carol');
  const out = { settled: await relay.settle(relay.seq) };
  await bob.sendTrack('bob-mic', 0);
  const audio = (n, tag) => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`${tag} ${i}`.padEnd(60)));
  relay.withhold = (to) => to === 'bob';
  const leftAt = performance.now();
  relay.leave('carol');
  const leaveSeq = relay.seq;
  out.leaveSeq = leaveSeq;
  out.beforeDeadline = await bob.feed('bob-mic', audio(3, 'early'));
  out.sendFailuresBefore = bob.sendFailures.length;
  const awaited = () => bob.events.find((e) => e.type === 'keyAwaited');
  while (!awaited() && performance.now() - leftAt < 6000) await sleep(25);
  out.awaitedAfterMs = Math.round(performance.now() - leftAt);
  out.awaited = awaited();
  out.aliceSwitched = alice.switched;
  out.bobSwitched = bob.switched;
  out.heldForBob = relay.held.length;
  out.sealWhileAwaited = (await bob.ask({ kind: 'testSeal', context: 0, layout: 0, data: new Uint8Array(8) }, 'testSealed')).reason;
  out.whileAwaited = await bob.feed('bob-mic', audio(4, 'stalled'));
  out.sendFailures = bob.sendFailures.map(({ id, context, reason, total }) => ({ id, context, reason, total }));
  relay.release();
  out.recovered = await relay.settle(leaveSeq);
  out.afterRelease = await bob.feed('bob-mic', audio(2, 'late'));
  const b = await bob.seal('bob after the late envelope');
  out.aliceOpensBob = (await alice.open(b.frame)).ok;
  out.carolOpensBob = (await carol.open(b.frame)).ok;
  out.errors = Object.fromEntries([...relay.all.values()].map((m) => [m.name, m.errors()]));
  for (const m of relay.all.values()) m.worker.terminate();
  return out;
}

/**
 * A page script that replaces `crypto.getRandomValues` (here: with sevens) before the app
 * starts two key exchanges through the npm API. The Workers draw their own randomness, so the
 * identity keys still differ and are not the ones a seed of sevens gives.
 */
async function pageRandomness() {
  const { HushE2ee } = await import('/web/dist/api/index.js');
  const real = crypto.getRandomValues;
  crypto.getRandomValues = (a) => { new Uint8Array(a.buffer, a.byteOffset, a.byteLength).fill(7); return a; };
  const ids = [];
  try {
    for (let i = 0; i < 2; i++) {
      const h = await HushE2ee.init({ workerUrl: '/web/dist/worker.js', wasmUrl: WASM_URL });
      const id = await h.startKeyExchange({ mode: 'exchange', insecureUnvouchedMembers: true, send: () => {} });
      ids.push(b64(id));
      h.close();
    }
  } finally {
    crypto.getRandomValues = real;
  }
  const stubbed = crypto.getRandomValues === real;
  return { ids, stubRemoved: stubbed, sevens: b64(new Uint8Array(32).fill(7)) };
}

/** Starting the key exchange without backendKey and without the opt-out is refused. */
async function startRefusals() {
  const relay = new Relay(null);
  const m = new Member(relay, 'nobody');
  await m.ask({ kind: 'init', wasmUrl: WASM_URL, suite: 4 }, 'initAck');
  const out = {};
  for (const [label, extra] of [['none', {}], ['short', { backendKey: new Uint8Array(31) }], ['notAKey', { backendKey: new Uint8Array(32) }]]) {
    const r = await m.ask({ kind: 'keysStart', mode: 'exchange', ...extra }, 'error');
    out[label] = `${r.reason}: ${r.detail}`;
  }
  m.worker.terminate();
  return out;
}

/**
 * (m) Frames sealed before a member joined, through carol's real receive transform for alice:
 * alice and bob seal frames, then carol joins; the relay delivers alice's earlier frames to
 * carol (as a relay does at every join, until the others switch to the join's epoch). Also on
 * alice's track: bob's earlier frame, a frame under a KID of alice's from an epoch carol never
 * got, and a frame alice seals after the join.
 */
async function preJoin() {
  const relay = new Relay(await backend());
  const alice = await relay.join('alice');
  const bob = await relay.join('bob');
  const out = { settled: await relay.settle(relay.seq) };
  const text = (t) => t.padEnd(60);
  const pre = [];
  for (let i = 0; i < 3; i++) pre.push((await alice.seal(text(`alice before carol ${i}`), 1)).frame);
  const bobPre = (await bob.seal(text('bob before carol'), 1)).frame;
  const carol = await relay.join('carol');
  out.settledAfter = await relay.settle(relay.seq);
  out.joinSeq = carol.joinSeq;
  await carol.track('alice', 'alice');
  out.pre = await carol.feed('alice', pre);
  out.bobsOnAlice = await carol.feed('alice', [bobPre]);
  const kid = (BigInt(alice.index) << 8n) | BigInt((relay.seq + 5) & 0xff);
  const data = new TextEncoder().encode(text('alice on an epoch carol never got'));
  const future = (await alice.ask({ kind: 'testSealWith', kid, key: new Uint8Array(16).fill(3), data }, 'testSealed')).frame;
  out.future = await carol.feed('alice', [future]);
  out.fresh = await carol.feed('alice', [(await alice.seal(text('alice after carol joined'), 1)).frame]);
  out.taken = await carol.taken('alice');
  out.failures = carol.failures.map(({ reason, total }) => ({ reason, total }));
  for (const m of relay.all.values()) m.worker.terminate();
  return out;
}

/**
 * (n) A relay that leaves carol out of dave's snapshot. Alice seals dave the join's epoch for
 * her roster, carol in it; carol ratchets to the same secret. Dave's roster lacks carol, so he
 * refuses the envelope (roster_mismatch) and has no key to send under: nothing of his is
 * readable by a member his screen never showed. The others move on as with any slow joiner.
 */
async function hidden() {
  const relay = new Relay(await backend());
  const alice = await relay.join('alice');
  const bob = await relay.join('bob');
  const carol = await relay.join('carol');
  const out = { settled: await relay.settle(relay.seq) };
  const dave = await relay.join('dave', { hide: ['carol'] });
  const others = [alice, bob, carol];
  const until = performance.now() + 6000;
  while (performance.now() < until
    && !(dave.errors().includes('roster_mismatch') && others.every((m) => m.switched === dave.joinSeq))) await sleep(25);
  out.daveErrors = dave.errors();
  out.daveMismatch = dave.events.filter((e) => e.type === 'rosterMismatch').map((e) => [e.epoch, e.committer]);
  out.joinSeq = dave.joinSeq;
  out.daveSwitched = dave.switched ?? null;
  out.daveSeal = (await dave.ask({ kind: 'testSeal', context: 0, layout: 0, data: new Uint8Array(8) }, 'testSealed')).reason;
  // His real send transform, which never had a key: its drops are no encryptFailure.
  await dave.sendTrack('dave-mic', 0);
  out.daveMic = await dave.feed('dave-mic', [new Uint8Array(60), new Uint8Array(60)]);
  out.daveSendFailures = dave.sendFailures.length;
  out.othersSwitched = others.map((m) => m.switched === dave.joinSeq);
  const a = await alice.seal('alice after dave');
  out.carolOpensAlice = (await carol.open(a.frame)).ok;
  for (const m of relay.all.values()) m.worker.terminate();
  return out;
}

/**
 * (q) Page keys: a send KID replaced by another is retired (its encryptor and key copy go) but
 * its counter is kept: set again, with the same key or a new one (the key exchange's KIDs
 * wrap after 256 epochs), it goes on from there, never from 0 (an AES-GCM nonce twice). A KID
 * paused (stopSend by a stall) and resumed goes on from its counter too. Counters are read
 * from the sealed frames' SFrame headers (one byte after the Opus TOC, KID and CTR below 8).
 */
async function retiredKid() {
  const m = new Member(new Relay(null), 'alice');
  await m.ask({ kind: 'init', wasmUrl: WASM_URL, suite: 4 }, 'initAck');
  await m.sendTrack('mic', 0);
  const frame = () => new Uint8Array(60).fill(0x78);
  const setKey = (kid, fill, context = 0) => m.ask({ kind: 'setSendKey', kid, key: new Uint8Array(16).fill(fill), context }, 'ack');
  await setKey(1n, 7);
  await m.feed('mic', [frame(), frame()]);
  // A stall: the key exchange stops the stream, then resumes the same KID and key.
  await m.ask({ kind: 'testStopSend', context: 0 }, 'testStopSendAck');
  await setKey(1n, 7);
  await m.feed('mic', [frame()]);
  await setKey(2n, 8);
  await m.feed('mic', [frame()]);
  // KID 1 again, with its old key, then with a new one.
  await setKey(1n, 7);
  await m.feed('mic', [frame()]);
  await setKey(2n, 8);
  await setKey(1n, 9);
  await m.feed('mic', [frame()]);
  const badContext = await m.ask({ kind: 'setSendKey', kid: 3n, key: new Uint8Array(16), context: 5 }, 'error');
  const stats = await m.trackStats('mic');
  const sealed = (await m.ask({ kind: 'testTaken', id: 'mic' }, 'testTook')).frames
    .map((f) => [(f[1] >> 4) & 7, f[1] & 7]);
  m.worker.terminate();
  return { sealed, badContext: `${badContext.reason}: ${badContext.detail}`, stats };
}

/** RFC 9605 section 4.4.2 with WebCrypto: the salt of `kid` under suite 4 (AES-128-GCM, SHA-256). */
async function sframeSalt(kid, baseKey) {
  const info = new Uint8Array(33);
  info.set(new TextEncoder().encode('SFrame 1.0 Secret salt '), 0);
  new DataView(info.buffer).setBigUint64(23, kid);
  new DataView(info.buffer).setUint16(31, 4);
  const ikm = await crypto.subtle.importKey('raw', baseKey, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, ikm, 96);
  return new Uint8Array(bits);
}

/**
 * (s) A send key replaced by another is gone from the wasm module's memory at once, not when
 * the garbage collector finalises its encryptor: the salt derived from the old key (which the
 * encryptor keeps for its nonces) is found while the key is in use, and not after the new key
 * sealed a few frames (their nonces overwrite the stack slots the old ones used).
 */
async function retiredKeyFreed() {
  const m = new Member(new Relay(null), 'alice');
  await m.ask({ kind: 'init', wasmUrl: WASM_URL, suite: 4 }, 'initAck');
  await m.sendTrack('mic', 0);
  const frame = () => new Uint8Array(60).fill(0x78);
  const key1 = crypto.getRandomValues(new Uint8Array(16));
  // The salt's first 8 bytes (small counters leave them as they are in every nonce too; the
  // stack slots KID 1's nonces used are written over by KID 2's).
  const needle = (await sframeSalt(1n, key1)).subarray(0, 8);
  const count = async () => (await m.ask({ kind: 'testWasmCount', needle }, 'testWasmCounted')).n;
  await m.ask({ kind: 'setSendKey', kid: 1n, key: key1, context: 0 }, 'ack');
  await m.feed('mic', [frame(), frame()]);
  const inUse = await count();
  // A frame big enough for WebCrypto, still being sealed under KID 1 when KID 2 replaces it:
  // it goes out under KID 1, and the encryptor is freed after it.
  await m.ask({ kind: 'testSlowSeal', ms: 200 }, 'testSlowSealAck');
  m.worker.postMessage({ kind: 'testFeed', id: 'mic', frames: [new Uint8Array(2000).fill(0x78)] });
  await m.ask({ kind: 'setSendKey', kid: 2n, key: crypto.getRandomValues(new Uint8Array(16)), context: 0 }, 'ack');
  await m.feed('mic', [frame(), frame(), frame()]);
  const replaced = await count();
  const stats = await m.trackStats('mic');
  const sealed = (await m.ask({ kind: 'testTaken', id: 'mic' }, 'testTook')).frames.map((f) => (f[1] >> 4) & 7);
  m.worker.terminate();
  return { inUse, replaced, sealed, host: stats.host, dropped: stats.dropped };
}

/**
 * (r) Key bytes handed to the wasm module are zeroed there once used: a distinctive secret,
 * passed to every entry that takes a frame key or a room secret, is not found in the module's
 * memory afterwards (wasm-bindgen frees the copies it makes of borrowed arguments unzeroed).
 */
async function wasmScan() {
  const m = new Member(new Relay(null), 'alice');
  await m.ask({ kind: 'init', wasmUrl: WASM_URL, suite: 4 }, 'initAck');
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const r = await m.ask({ kind: 'testWasmScan', secret }, 'testWasmScanned');
  m.worker.terminate();
  return r;
}

/**
 * (o) A long call adds and drops tracks: 100 receive transforms start and end in one Worker.
 * Its stats keep the newest 64 ended ones and every live one, not all 100.
 */
async function endedStats() {
  const relay = new Relay(null);
  const m = await relay.join('alice');
  await m.track('live', 'bob');
  for (let i = 0; i < 100; i++) {
    await m.track(`t${i}`, 'bob');
    await m.ask({ kind: 'testTrackEnd', id: `t${i}` }, 'testTrackEnded');
  }
  const until = performance.now() + 3000;
  let all = [];
  while (performance.now() < until) {
    all = (await m.ask({ kind: 'stats' }, 'stats')).transforms;
    if (all.filter((t) => t.ended).length <= 64 && all.some((t) => t.id === 't99' && t.ended)) break;
    await sleep(25);
  }
  // A page message whose key is not a Uint8Array is refused, not taken into the key ring.
  const refused = [];
  for (const kind of ['setSendKey', 'addRecvKey']) {
    const e = await m.ask({ kind, kid: 9n, key: [1, 2, 3], context: 0 }, 'error');
    refused.push(`${e.reason}: ${e.detail}`);
  }
  // KIDs a frame never carries, and keys SFrame cannot derive from, are refused too.
  const badArgs = [];
  for (const [kid, key] of [[1, new Uint8Array(16)], [-1n, new Uint8Array(16)], [1n << 64n, new Uint8Array(16)], [1n, new Uint8Array(8)], [1n, new Uint8Array(65)]]) {
    for (const kind of ['setSendKey', 'addRecvKey']) {
      const e = await m.ask({ kind, kid, key, context: 0 }, 'error');
      badArgs.push(`${e.reason}: ${e.detail}`);
    }
  }
  m.worker.terminate();
  // A suite the frame layer does not have is refused at init (its receivers used to throw on
  // every frame, uncounted).
  const n = new Member(relay, 'nosuite');
  const badSuite = await n.ask({ kind: 'init', wasmUrl: WASM_URL, suite: 9 }, 'error');
  n.worker.terminate();
  return { count: all.length, ended: all.filter((t) => t.ended).map((t) => t.id), live: all.filter((t) => !t.ended).map((t) => t.id), refused, badArgs, badSuite: `${badSuite.reason}: ${badSuite.detail}` };
}

window.keys = { run, ghosts, startRefusals, twoTransforms, pageRandomness, stall, preJoin, hidden, endedStats, retiredKid, wasmScan, retiredKeyFreed };
window.keysReady = true;
