// Page side of the key-exchange browser test: several real Workers (each its own wasm
// hush-keys session) and a fake relay in this page that sequences membership events, forwards
// e2ee messages with `from` and sequences rekey requests, as the relay contract says. The
// Node runner (keys.test.mjs) calls `window.keys`.
const WASM_URL = '/web/wasm/hush_wasm_bg.wasm';
const ROOM = 'keys-room';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64 = (u8) => btoa(String.fromCharCode(...u8));

/** One member: a Worker, its events, and a one-at-a-time request helper. */
class Member {
  constructor(relay, name) {
    this.relay = relay;
    this.name = name;
    this.events = [];
    this.pending = null;
    this.worker = new Worker('./keys.worker.js', { type: 'module' });
    this.worker.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    switch (m.kind) {
      case 'relaySend': this.relay.fromClient(this, m.message); return;
      case 'keyEvent': this.events.push(m.event); return;
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
  get code() { return this.lastOf('safetyCode', 'code'); }
  errors() { return this.events.filter((e) => e.type === 'error').map((e) => e.reason); }

  async seal(text) {
    const r = await this.ask({ kind: 'testSeal', context: 0, data: new TextEncoder().encode(text) }, 'testSealed');
    if (!r.frame) throw new Error(`${this.name}: ${r.reason}`);
    return r;
  }

  async open(frame) {
    const r = await this.ask({ kind: 'testOpen', frame }, 'testOpened');
    return r.data ? { ok: true, text: new TextDecoder().decode(r.data) } : { ok: false, reason: r.reason };
  }
}

/** The fake relay: one ordered log per room, e2ee to one named member, rekey sequencing. */
class Relay {
  constructor() {
    this.seq = 0;
    this.nextIndex = 1;
    this.present = [];
    this.all = new Map();
    this.rekeys = 0;
  }

  info(m) {
    return { id: m.name, sender_index: m.index, join_seq: m.joinSeq, identity_key: m.identityKey,
      grants: { publish: true, subscribe: true, moderator: false, record: false } };
  }

  /** Delivers a relay message to a member's Worker, as the page would (async, in order). */
  deliver(m, event) { m.worker.postMessage({ kind: 'relayEvent', event }); }

  async join(name) {
    const m = new Member(this, name);
    this.all.set(name, m);
    await m.ask({ kind: 'init', wasmUrl: WASM_URL, suite: 4 }, 'initAck');
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const id = await m.ask({ kind: 'keysStart', mode: 'exchange', seed }, 'keysIdentity');
    m.identityKey = b64(id.identityKey);
    m.identityBytes = id.identityKey.length;
    await m.ask({ kind: 'testStream', context: 0 }, 'testStreamAck');
    m.index = this.nextIndex++;
    m.joinSeq = ++this.seq;
    this.deliver(m, { v: 1, type: 'joined', you: name, sender_index: m.index, join_seq: m.joinSeq, room: ROOM,
      locked: false, grants: { publish: true, subscribe: true, moderator: false, record: false },
      participants: this.present.map((p) => this.info(p)), tracks: [] });
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
      const to = this.present.find((p) => p.name === msg.to);
      if (to) setTimeout(() => this.deliver(to, { v: 1, type: 'e2ee', from: from.name, payload: msg.payload }), Math.random() * 20);
    } else if (msg.type === 'rekey') {
      this.rekeys++;
      const seq = ++this.seq;
      for (const p of this.present) this.deliver(p, { v: 1, type: 'rekey', seq });
    }
  }

  /** Waits (bounded) until every present member sends on `epoch`. */
  async settle(epoch, ms = 8000) {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      if (this.present.every((p) => p.switched === epoch)) return true;
      await sleep(25);
    }
    return false;
  }
}

async function run() {
  const out = {};
  const relay = new Relay();
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

  out.errors = Object.fromEntries([...relay.all.values()].map((m) => [m.name, m.errors()]));
  for (const m of relay.all.values()) m.worker.terminate();
  return out;
}

window.keys = { run };
window.keysReady = true;
