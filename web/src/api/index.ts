/**
 * Hush browser API: end-to-end encryption for any RTCPeerConnection.
 *
 * ```js
 * const hush = await HushE2ee.init();             // starts the Worker, loads the wasm
 * const pc = new RTCPeerConnection(hush.peerConnectionConfig());
 * const t = pc.addTransceiver(track, { direction: 'sendonly' });
 * hush.attachSender(t.sender, { source: 'camera' }); // before negotiation
 * await hush.setKey(1n, key);                      // or startKeyExchange(...)
 * ```
 *
 * Keys live in the Worker: the page hands over explicit keys, or carries the opaque key-exchange
 * messages between the relay and the Worker and receives public results (epochs, the safety code,
 * decrypt failures, stats). No top-level await: nothing runs until `init`.
 */
import type { DropReason, FromWorker, RelayMessage, ToWorker, TransformOptions, TransformStats } from '../protocol.js';
import { HushError, WorkerLink, type WorkerEvent } from './link.js';

export { HushError } from './link.js';
export type { DropReason, TransformStats } from '../protocol.js';

/** What a local track carries; picks its SFrame stream context. */
export type Source = 'microphone' | 'camera' | 'screen' | 'screen_audio';

/** Stream context per source (hush-keys' KID layout). */
export const CONTEXTS: Readonly<Record<Source, number>> = { microphone: 0, camera: 1, screen: 2, screen_audio: 3 };

/** Cipher suites (RFC 9605 section 4.5). */
export const Suite = {
  AES_128_CTR_HMAC_SHA256_80: 1,
  AES_128_CTR_HMAC_SHA256_64: 2,
  AES_128_CTR_HMAC_SHA256_32: 3,
  AES_128_GCM_SHA256_128: 4,
  AES_256_GCM_SHA512_128: 5,
} as const;

/** Options for `init`. Every URL defaults to the file next to this module in the package. */
export interface InitOptions {
  /** The Worker script (`hush-e2ee/worker`). Ignored when `worker` is given. */
  workerUrl?: string | URL;
  /** A Worker already started from the worker script (for bundlers: `new Worker(new URL(...))`). */
  worker?: Worker;
  /** The wasm module (`hush_wasm_bg.wasm`). */
  wasmUrl?: string | URL;
  /** Cipher suite; AES_128_GCM_SHA256_128 (4) by default. */
  suite?: number;
  /** Use `createEncodedStreams` even where `RTCRtpScriptTransform` exists (tests). */
  forceLegacy?: boolean;
}

/**
 * How `startKeyExchange` keys the room, and whom it admits.
 *
 * Membership is vouched by default: the app backend signs each member's identity key (an
 * attestation, sent in `join.attestation`), and the Worker refuses every member the relay
 * announces without a valid one (`memberrefused`: no epoch secret, not in the safety code).
 * In `exchange` mode `backendKey` is required unless `insecureUnvouchedMembers` is set.
 */
export interface KeyExchangeOptions {
  /** `exchange`: HPKE epoch envelopes between members; `shared`: keys from one room secret. */
  mode: 'exchange' | 'shared';
  /** The room secret for `shared` mode (high entropy; the Worker refuses short ones). */
  sharedSecret?: Uint8Array;
  /** The app backend's Ed25519 public key (32 bytes) that checks every member's attestation. */
  backendKey?: Uint8Array;
  /**
   * Admit whoever the relay announces, vouched for or not. The relay can then add a member of
   * its own that every epoch secret is sealed to: only for tests, or for apps that compare the
   * safety code out of band on every membership change. (In `shared` mode the room secret
   * already keeps a relay-made member out of the keys; `backendKey` there is optional.)
   */
  insecureUnvouchedMembers?: boolean;
  /** Sends a hush-proto ClientMessage object (`e2ee`, `rekey`) to the relay as is. */
  send(message: Record<string, unknown>): void;
}

/** Per-participant counters from `getStats`. */
export interface ParticipantStats {
  /** The participant id, or `self` for this page's senders. */
  participant: string;
  /** Frames the Worker handled (decrypted or encrypted). */
  frames: number;
  /** Frames that passed (decrypted on receive, encrypted on send). */
  ok: number;
  /** Frames dropped, by reason. */
  dropped: Partial<Record<DropReason, number>>;
  /** Video frames the decoder decoded (receive side). */
  framesDecoded: number;
  /** Bytes received (receive) or sent (send) by RTP. */
  bytes: number;
  /** Bits per second since the previous `getStats` call. */
  bitrate: number;
  /** Per-transform detail. */
  transforms: TransformStats[];
}

/** Detail of the `decryptfailure` event. */
export interface DecryptFailure {
  participant: string | undefined;
  reason: DropReason;
  /** Frames dropped for this reason by this transform so far. */
  total: number;
  /** The transform's label. */
  id: string;
}

/**
 * Detail of the `encryptfailure` event: a local stream's frames are being dropped instead of
 * sent. `no_key`: its key was taken away after it had sent (with the key exchange, `keyawaited`
 * says why); `encrypt_failed`: the frame layer refused to seal. The first drop for a reason is
 * reported at once, then at most one event per second per transform and reason.
 */
export interface EncryptFailure {
  /** The send transform's label. */
  id: string;
  /** The stream context (microphone 0, camera 1, screen 2, screen audio 3). */
  context: number;
  reason: 'no_key' | 'encrypt_failed';
  /** Frames dropped for this reason by this transform so far. */
  total: number;
}

/** Detail of the `keychange` event. */
export interface KeyChange {
  /** `installed`: a new epoch's keys are ready; `switched`: senders now use it; `explicit`: setKey. */
  type: 'installed' | 'switched' | 'explicit';
  epoch?: number;
}

/**
 * Events: `keychange` (KeyChange), `decryptfailure` (DecryptFailure), `encryptfailure`
 * (EncryptFailure: a local stream's frames are dropped, not sent), `safetycode` ({code,
 * changed}: the code of the current members, 25 digits in five groups; `changed` when an earlier
 * code was shown, so users who compared it must compare again), `safetycodepending` ({epoch}:
 * membership changed and the members are agreeing on the new code, hide the old one),
 * `keyframewanted` ({}), `memberrefused` ({participant, reason}), `keyerror` ({reason}: a key
 * message refused; `roster_mismatch` comes with `rostermismatch`, below),
 * `workerfailed` ({detail}), `keyawaited` ({epoch, committer?}: sending stopped until a key
 * comes; `keychange` `switched` ends it), `recording` ({active}: the room's recorder became a
 * member of the key exchange, so every epoch from now on is also sealed to the recorder's
 * offline key, or it left; only a recorder the backend vouched for in the recorder role counts,
 * not what the relay says; `RelaySession`'s `recording` event adds who started it and why it
 * ended), `rekeyoverdue` ({epoch}: this participant is the committer and the relay has kept its
 * rekey from happening for 90 s past due, withholding the point or naming only others as asking;
 * keys still ratchet, but fresh secrets enter only at leaves until the next fresh epoch),
 * `rostermismatch` ({epoch, committer}: the committer sealed this participant an epoch for
 * another member list than the relay showed it, so the relay shows members different rosters;
 * the epoch is not used: this participant stays on its epoch, after a departure it stops
 * sending at the stall deadline (`keyawaited`), a newcomer never starts, and the safety code
 * stays pending; say so, rejoining gets a fresh snapshot). Each is a CustomEvent with
 * the object as `detail`.
 */
export type HushEventName =
  | 'keychange' | 'decryptfailure' | 'safetycode' | 'safetycodepending' | 'keyframewanted' | 'memberrefused'
  | 'keyerror' | 'workerfailed' | 'keyawaited' | 'recording' | 'rekeyoverdue' | 'rostermismatch'
  | 'encryptfailure';

interface Attached {
  options: TransformOptions;
  sender?: RTCRtpSender;
  receiver?: RTCRtpReceiver;
  lastBytes: number;
  lastTime: number;
}

/**
 * A copy of `key` for the Worker, whose buffer the caller transfers: the Worker owns it (and
 * zeroes it when the key is replaced) and the page keeps nothing of it; the caller's own `key`
 * stays the caller's to clear. A fresh buffer (a `Buffer`'s `slice` would be a view of a pool).
 */
function keyCopy(key: Uint8Array): Uint8Array<ArrayBuffer> {
  if (!(key instanceof Uint8Array)) throw new HushError('bad_argument', 'key must be a Uint8Array');
  return new Uint8Array(key);
}

/** Legacy Chromium API (`encodedInsertableStreams: true`). */
type WithEncodedStreams = { createEncodedStreams(): { readable: ReadableStream; writable: WritableStream } };

/** Whether this browser has `RTCRtpScriptTransform`. */
export function hasScriptTransform(): boolean {
  return typeof globalThis.RTCRtpScriptTransform === 'function';
}

/** Whether this browser has the legacy `createEncodedStreams`. */
export function hasEncodedStreams(): boolean {
  return typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype;
}

/** The E2EE layer of one page: owns the Worker. */
export class HushE2ee extends EventTarget {
  private link: WorkerLink | null = null;
  private legacy = false;
  private readonly attached: Attached[] = [];
  private readonly seen = new WeakSet<object>();
  private nextId = 0;
  private keyExchange: KeyExchangeOptions | null = null;
  private lastSafetyCode: string | null = null;
  /** How many safety codes were reported so far (the first is no change). */
  private codesShown = 0;

  /** Starts the Worker and loads the wasm; resolves with a ready instance. */
  static async init(options: InitOptions = {}): Promise<HushE2ee> {
    const hush = new HushE2ee();
    await hush.init(options);
    return hush;
  }

  /** Starts the Worker and loads the wasm (once). Other methods throw `not_initialized` before. */
  async init(options: InitOptions = {}): Promise<void> {
    if (this.link) throw new HushError('already_initialized', 'init was already called');
    if (!hasScriptTransform() && !hasEncodedStreams()) {
      throw new HushError('unsupported', 'this browser has neither RTCRtpScriptTransform nor createEncodedStreams');
    }
    this.legacy = options.forceLegacy === true ? hasEncodedStreams() : !hasScriptTransform();
    const worker = options.worker
      ?? (options.workerUrl !== undefined
        ? new Worker(options.workerUrl, { type: 'module' })
        : new Worker(new URL('../worker.js', import.meta.url), { type: 'module' }));
    const wasmUrl = String(options.wasmUrl ?? new URL('../../wasm/hush_wasm_bg.wasm', import.meta.url));
    const link = new WorkerLink(worker, (e) => this.onWorkerEvent(e));
    try {
      await link.request({ kind: 'init', wasmUrl: new URL(wasmUrl, location.href).href, suite: options.suite ?? Suite.AES_128_GCM_SHA256_128 }, 'initAck');
    } catch (e) {
      link.close();
      throw e;
    }
    this.link = link;
  }

  /** Whether attach uses the legacy `createEncodedStreams` path. */
  get usesLegacyStreams(): boolean {
    return this.legacy;
  }

  /**
   * The RTCPeerConnection configuration to use with this instance: adds
   * `encodedInsertableStreams: true` where the legacy path needs it. Create the connection with it.
   */
  peerConnectionConfig(config: RTCConfiguration = {}): RTCConfiguration {
    this.ready();
    return this.legacy ? { ...config, encodedInsertableStreams: true } as RTCConfiguration : config;
  }

  /** Encrypts everything `sender` sends. Call right after addTrack/addTransceiver, before negotiation. */
  attachSender(sender: RTCRtpSender, options: { source?: Source; kind?: 'audio' | 'video' } = {}): void {
    const kind = options.kind ?? (sender.track?.kind as 'audio' | 'video' | undefined);
    if (kind !== 'audio' && kind !== 'video') throw new HushError('bad_argument', 'the sender has no track: pass kind');
    const source = options.source ?? (kind === 'audio' ? 'microphone' : 'camera');
    const context = CONTEXTS[source];
    if (context === undefined) throw new HushError('bad_argument', `unknown source ${String(source)}`);
    this.attach(sender, { side: 'send', kind, id: `send-${source}-${this.nextId++}`, context } as TransformOptions, { sender });
  }

  /**
   * Decrypts everything `receiver` receives. Call before `setLocalDescription` (right after
   * addTransceiver, or in `ontrack` on the answering side). Frames that do not decrypt are dropped.
   *
   * `participant`: whose media this track carries. The track then opens only that
   * participant's frames: under keys the key exchange binds to it, or that `addRecvKey` was
   * given with that `participant`. Another sender's frame is dropped as `wrong_sender`, and a
   * frame already accepted on any of its tracks as `replayed` (one replay window per key for
   * all of a participant's tracks), so the relay can neither show one participant's media as
   * another's nor replay recorded frames on a new track. Without `participant` the track
   * opens only frames under keys added without a `participant` (replay windows of its own);
   * frames under any sender's bound key, which includes every key of the key exchange, are
   * dropped as `wrong_sender`: a track whose sender is unknown fails closed.
   */
  attachReceiver(receiver: RTCRtpReceiver, options: { participant?: string } = {}): void {
    const kind = receiver.track.kind as 'audio' | 'video';
    const id = `recv-${options.participant ?? 'remote'}-${kind}-${this.nextId++}`;
    this.attach(receiver, { side: 'recv', kind, id, participant: options.participant } as TransformOptions, { receiver });
  }

  /** Whether `endpoint` already has a transform from this instance. */
  isAttached(endpoint: RTCRtpSender | RTCRtpReceiver): boolean {
    return this.seen.has(endpoint);
  }

  /** Sets the send key (all contexts, or one) for the local streams. */
  async setSendKey(kid: bigint, key: Uint8Array, context?: number): Promise<void> {
    const copy = keyCopy(key);
    const link = this.ready();
    const m = { kind: 'setSendKey', kid, key: copy, ...(context === undefined ? {} : { context }) } as ToWorker;
    await link.request(m, 'ack', [copy.buffer]);
    this.emit('keychange', { type: 'explicit' } satisfies KeyChange);
  }

  /**
   * Adds a receive key. `participant`: the sender whose frames it opens; only receivers
   * attached for that participant use it. Without it only receivers attached without a
   * participant do.
   */
  async addRecvKey(kid: bigint, key: Uint8Array, options: { participant?: string } = {}): Promise<void> {
    const { participant } = options;
    if (participant !== undefined && typeof participant !== 'string') throw new HushError('bad_argument', 'participant must be a string');
    const copy = keyCopy(key);
    await this.ready().request({ kind: 'addRecvKey', kid, key: copy, ...(participant === undefined ? {} : { participant }) }, 'ack', [copy.buffer]);
    this.emit('keychange', { type: 'explicit' } satisfies KeyChange);
  }

  /** Removes a receive key. */
  async removeRecvKey(kid: bigint): Promise<void> {
    await this.ready().request({ kind: 'removeRecvKey', kid }, 'ack');
  }

  /**
   * Explicit keys, both ways: `kid`/`key` for sending and receiving (a symmetric test call);
   * `participant` binds the receive key to the peer (see `addRecvKey`).
   */
  async setKey(kid: bigint, key: Uint8Array, options: { context?: number; participant?: string } = {}): Promise<void> {
    await this.setSendKey(kid, key, options.context);
    await this.addRecvKey(kid, key, { participant: options.participant });
  }

  /**
   * Starts the hush-keys session in the Worker; resolves with the identity public key to put in
   * `join.identity_key`. With `backendKey` (the default path) the app then asks its backend to
   * vouch for that key (an attestation for `join.attestation`) before it joins. Then pass every
   * relay membership and `e2ee` message to `relayEvent`. Refused members come as
   * `memberrefused` events `{participant, reason}` (`missing_attestation`, `bad_attestation`).
   * Rejects with `bad_argument` when the options are wrong (no `backendKey` without the
   * opt-out, a key of the wrong length, or one the Worker finds is no Ed25519 key).
   */
  async startKeyExchange(options: KeyExchangeOptions): Promise<Uint8Array> {
    const link = this.ready();
    if (this.keyExchange) throw new HushError('already_started', 'the key exchange already runs');
    if (options.mode === 'shared' && !(options.sharedSecret instanceof Uint8Array)) {
      throw new HushError('bad_argument', 'shared mode needs sharedSecret');
    }
    const { backendKey } = options;
    const unvouched = options.insecureUnvouchedMembers === true;
    if (backendKey !== undefined && (!(backendKey instanceof Uint8Array) || backendKey.length !== 32)) {
      throw new HushError('bad_argument', 'backendKey must be the backend\'s 32-byte Ed25519 public key');
    }
    if (backendKey !== undefined && unvouched) {
      throw new HushError('bad_argument', 'pass backendKey or insecureUnvouchedMembers, not both');
    }
    if (options.mode === 'exchange' && backendKey === undefined && !unvouched) {
      throw new HushError('bad_argument',
        'the key exchange needs backendKey (the app backend vouches for members); insecureUnvouchedMembers: true admits anyone the relay announces');
    }
    // No randomness from this page: the Worker draws every secret itself. The room secret's
    // copy is transferred, so none stays in the page; the one passed in stays the caller's.
    const secret = options.sharedSecret ? keyCopy(options.sharedSecret) : undefined;
    const m: ToWorker = {
      kind: 'keysStart',
      mode: options.mode,
      ...(secret ? { sharedSecret: secret } : {}),
      ...(backendKey ? { backendKey: backendKey.slice() } : { insecureUnvouchedMembers: true }),
    };
    this.keyExchange = options;
    try {
      const reply = await link.request<Extract<FromWorker, { kind: 'keysIdentity' }>>(m, 'keysIdentity', secret ? [secret.buffer] : []);
      return reply.identityKey;
    } catch (e) {
      this.keyExchange = null;
      if (e instanceof HushError && e.code === 'bad_message') {
        throw new HushError('unsupported', 'this Worker has no key exchange');
      }
      throw e;
    }
  }

  /**
   * Starts the key exchange again, with the options `startKeyExchange` had, as a new member:
   * resolves with a new identity key (have the backend vouch for it again) and takes the old
   * session's keys out of the Worker, so nothing of it seals or opens a frame afterwards. For a
   * rejoin after the relay lost this participant (what `RelaySession` does when it reconnects).
   */
  async rejoinKeyExchange(): Promise<Uint8Array> {
    const options = this.keyExchange;
    if (!options) throw new HushError('not_started', 'call startKeyExchange first');
    this.keyExchange = null;
    this.lastSafetyCode = null;
    return this.startKeyExchange(options);
  }

  /** Hands a relay message (`joined`, `participant_joined`, `participant_left`, `rekey`, `e2ee`) to the key exchange. */
  relayEvent(event: RelayMessage): void {
    const link = this.ready();
    if (!this.keyExchange) return;
    const m: ToWorker = { kind: 'relayEvent', event };
    link.post(m, []);
  }

  /** The safety code of the current members; `null` while the new one is being agreed. */
  get safetyCode(): string | null {
    return this.lastSafetyCode;
  }

  /** Worker counters and RTP stats, per participant (`self` for the local senders). */
  async getStats(): Promise<ParticipantStats[]> {
    const reply = await this.ready().request<Extract<FromWorker, { kind: 'stats' }>>({ kind: 'stats' }, 'stats');
    const byId = new Map(reply.transforms.map((t) => [t.id, t]));
    const out = new Map<string, ParticipantStats>();
    const now = performance.now();
    for (const a of this.attached) {
      const t = byId.get(a.options.id);
      const who = a.options.side === 'send' ? 'self' : (a.options as { participant?: string }).participant ?? 'remote';
      let p = out.get(who);
      if (!p) {
        p = { participant: who, frames: 0, ok: 0, dropped: {}, framesDecoded: 0, bytes: 0, bitrate: 0, transforms: [] };
        out.set(who, p);
      }
      if (t) {
        p.transforms.push(t);
        p.frames += t.frames;
        p.ok += t.ok;
        for (const [r, n] of Object.entries(t.dropped)) {
          p.dropped[r as DropReason] = (p.dropped[r as DropReason] ?? 0) + (n ?? 0);
        }
      }
      const rtp = await rtpStats(a);
      p.framesDecoded += rtp.framesDecoded;
      p.bytes += rtp.bytes;
      if (a.lastTime > 0 && now > a.lastTime && rtp.bytes >= a.lastBytes) {
        p.bitrate += Math.round(((rtp.bytes - a.lastBytes) * 8 * 1000) / (now - a.lastTime));
      }
      a.lastBytes = rtp.bytes;
      a.lastTime = now;
    }
    // Endpoints that are done are forgotten after this report: a long call adds and drops
    // tracks, and each one kept would be asked for its RTP stats at every call. Done: the
    // Worker says the transform ended, or (a receiver) its track ended, which is for good (a
    // sender's track can come back through replaceTrack).
    for (let i = this.attached.length - 1; i >= 0; i--) {
      const a = this.attached[i];
      const done = byId.get(a.options.id)?.ended === true || a.receiver?.track.readyState === 'ended';
      if (done) this.attached.splice(i, 1);
    }
    return [...out.values()];
  }

  /** Raw Worker counters, one entry per transform. */
  async transformStats(): Promise<TransformStats[]> {
    return (await this.ready().request<Extract<FromWorker, { kind: 'stats' }>>({ kind: 'stats' }, 'stats')).transforms;
  }

  /** Stops the Worker. The attached transforms stop passing frames. */
  close(): void {
    this.link?.close();
    this.link = null;
    this.keyExchange = null;
  }

  private ready(): WorkerLink {
    if (!this.link) throw new HushError('not_initialized', 'call HushE2ee.init() (and await it) first');
    return this.link;
  }

  private attach(endpoint: RTCRtpSender | RTCRtpReceiver, options: TransformOptions, a: Pick<Attached, 'sender' | 'receiver'>): void {
    const link = this.ready();
    if (this.seen.has(endpoint)) return;
    if (this.legacy) {
      let streams: { readable: ReadableStream; writable: WritableStream };
      try {
        streams = (endpoint as unknown as WithEncodedStreams).createEncodedStreams();
      } catch (e) {
        throw new HushError('unsupported', `createEncodedStreams failed (create the RTCPeerConnection with peerConnectionConfig()): ${String(e)}`);
      }
      link.post({ readable: streams.readable, writable: streams.writable, options }, [streams.readable, streams.writable] as unknown as Transferable[]);
    } else {
      endpoint.transform = new RTCRtpScriptTransform(link.worker, options);
    }
    this.seen.add(endpoint);
    this.attached.push({ options, ...a, lastBytes: 0, lastTime: 0 });
  }

  private emit(name: HushEventName, detail: unknown): void {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  private onWorkerEvent(m: WorkerEvent): void {
    switch (m.kind) {
      case 'decryptFailure':
        this.emit('decryptfailure', {
          participant: m.participant as string | undefined, reason: m.reason as DropReason, total: Number(m.total), id: String(m.id),
        } satisfies DecryptFailure);
        return;
      case 'encryptFailure':
        this.emit('encryptfailure', {
          id: String(m.id), context: Number(m.context), reason: m.reason === 'no_key' ? 'no_key' : 'encrypt_failed', total: Number(m.total),
        } satisfies EncryptFailure);
        return;
      case 'relaySend':
        if (this.keyExchange && m.message && typeof m.message === 'object') {
          this.keyExchange.send(m.message as Record<string, unknown>);
        }
        return;
      case 'keyEvent':
        this.onKeyEvent((m.event ?? {}) as Record<string, unknown>);
        return;
      case 'workerFailed':
        this.emit('workerfailed', { detail: m.detail });
        return;
      case 'error':
        this.emit('keyerror', { reason: m.reason, detail: m.detail });
        return;
      default:
        // Unknown events are ignored: a newer Worker may send more.
    }
  }

  private onKeyEvent(e: Record<string, unknown>): void {
    switch (e.type) {
      case 'epoch': this.emit('keychange', { type: 'installed', epoch: Number(e.epoch) } satisfies KeyChange); return;
      case 'switched': this.emit('keychange', { type: 'switched', epoch: Number(e.epoch) } satisfies KeyChange); return;
      case 'safetyCodePending':
        this.lastSafetyCode = null;
        this.emit('safetycodepending', { epoch: Number(e.epoch) });
        return;
      case 'safetyCode':
        this.lastSafetyCode = String(e.code);
        this.emit('safetycode', { code: this.lastSafetyCode, changed: this.codesShown++ > 0 });
        return;
      case 'keyframeWanted': this.emit('keyframewanted', {}); return;
      case 'memberRefused': this.emit('memberrefused', { participant: e.participant, reason: e.reason }); return;
      // Sending stopped until the key comes (`keychange` `switched` ends it); `committer` when
      // the committer has not answered at all.
      case 'keyAwaited': this.emit('keyawaited', { epoch: Number(e.epoch) }); return;
      case 'committerStalled':
        this.emit('keyawaited', { epoch: Number(e.epoch), committer: String(e.committer) });
        return;
      // We are the committer and the relay kept our rekey from happening for 90 s past due.
      case 'rekeyOverdue': this.emit('rekeyoverdue', { epoch: Number(e.epoch) }); return;
      // The committer sealed us an epoch for another member list than the relay showed us.
      case 'rosterMismatch':
        this.emit('rostermismatch', { epoch: Number(e.epoch), committer: String(e.committer) });
        return;
      // The recorder joined or left the key exchange (trusted: vouched for as recorder).
      case 'recording': this.emit('recording', { active: e.active === true }); return;
      case 'error': this.emit('keyerror', { reason: e.reason }); return;
      default:
    }
  }
}

/** RTP byte and frame counters of one attached sender or receiver. */
async function rtpStats(a: Attached): Promise<{ bytes: number; framesDecoded: number }> {
  let bytes = 0;
  let framesDecoded = 0;
  try {
    const report = await (a.sender ?? a.receiver)?.getStats();
    report?.forEach((r: Record<string, unknown>) => {
      if (r.type === 'inbound-rtp') {
        bytes += Number(r.bytesReceived ?? 0);
        framesDecoded += Number(r.framesDecoded ?? 0);
      } else if (r.type === 'outbound-rtp') {
        bytes += Number(r.bytesSent ?? 0);
      }
    });
  } catch {
    // A closed connection has no stats: count nothing.
  }
  return { bytes, framesDecoded };
}
