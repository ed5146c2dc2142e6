/**
 * A client for the Hush relay: WebSocket signaling on `/v1/rtc` (hush-proto JSON, `v: 1`), one
 * RTCPeerConnection, E2EE through `HushE2ee`.
 *
 * Negotiation follows the relay contract: the client publishes with `sendonly` transceivers
 * (the sender transform attached right after `addTransceiver`), sends `publish {source, mid}` per
 * transceiver and then its `offer`; the relay answers. The relay offers when it forwards other
 * participants' tracks; it is the impolite peer, so when its offer meets ours the client rolls
 * back, answers, and offers again (perfect negotiation, the polite side). Received tracks are
 * mapped to participants by stream id `p<sender_index>` and track id `t<track>`.
 *
 * Reconnect (with `reconnect` in the options): when the socket closes without a `leave`, and
 * not for a reason a retry cannot fix (`removed`, `replaced`, `room_closed`, `room_locked`, a
 * token for another room or audience, a `joined` for another room than ours: `wrong_room`),
 * the session rejoins with a fresh token from
 * `reconnect.token()` (tokens are single use), backing off from 250 ms to 5 s between
 * attempts: a new PeerConnection publishing the same tracks, and a new member of the key
 * exchange (`HushE2ee.rejoinKeyExchange`: a new identity, vouched for again). It emits
 * `reconnecting` ({attempt, code, message}) before each attempt and `reconnected` ({attempts,
 * ms}) after the one that worked; the tracks and members of before end (`trackended`,
 * `participantleft`) and come again. A network blip that keeps the socket open needs none of
 * this: ICE recovers on its own. Without `reconnect` a closed socket ends the session with a
 * `close` event carrying the relay's error code, if it sent one.
 */
import { sendEncodings, type SimulcastOption } from './simulcast.js';
export type { SimulcastLayer, SimulcastOption } from './simulcast.js';
import { CONTEXTS, HushE2ee, type Source } from '../api/index.js';
import { alignExtmapIds, extmapIds, keepDtlsRole } from './sdp.js';

/** A member of the room, as the relay describes it. */
export interface Member {
  id: string;
  senderIndex: number;
  joinSeq: number;
  identityKey: string;
  /**
   * `recorder`: the room's recorder (it publishes nothing; while it is a member of the key
   * exchange the call is recorded, see the `recording` event). As the relay says: the key
   * exchange admits it only with the backend's attestation in the recorder role.
   */
  role: 'participant' | 'recorder';
}

/** What this participant's token allows, as the relay read it (`joined.grants`). */
export interface Grants {
  publish: boolean;
  subscribe: boolean;
  moderator: boolean;
  /** May start and stop recording the room (`startRecording`, `stopRecording`). */
  record: boolean;
}

/** The relay's `recording.reason` values (hush-proto's `RecordingEnd`). */
const RECORDING_ENDS = ['stopped', 'disk_full', 'write_error', 'size_limit', 'room_empty', 'shutdown', 'removed'] as const;

/** Why a recording ended (the relay's `recording.reason`). */
export type RecordingEnd = (typeof RECORDING_ENDS)[number];

/**
 * Detail of the `recording` event. `active` follows the key exchange: whether the room's
 * recorder is a member of it, and so whether the epochs from now on are sealed to the
 * recorder's offline key (hush-participant's `Recording` event, through the Worker). The
 * relay's `recording` message cannot set it: a relay that says a recording stopped while the
 * recorder is still a member leaves `active` true, and one that records without admitting a
 * vouched recorder records nothing it can open. `by` and `reason` are the relay's word, given
 * when its message agrees with `active`.
 */
export interface RecordingState {
  active: boolean;
  /** Who started (or stopped) it; absent when the app backend or the relay did. */
  by?: string;
  /** Why it ended (with `active: false`). */
  reason?: RecordingEnd;
}

/** A remote track and whose it is. */
export interface RemoteTrack {
  participant: string | undefined;
  senderIndex: number | undefined;
  trackId: number | undefined;
  track: MediaStreamTrack;
  receiver: RTCRtpReceiver;
}

/** How the room's media keys are made. */
export type KeyMode =
  /** The hush-keys exchange (HPKE envelopes through the relay). */
  | { mode: 'exchange' }
  /** One room secret, distributed by the app; keys ratchet on joins. */
  | { mode: 'shared'; secret: Uint8Array }
  /** Explicit keys derived here from a secret (no exchange; every member needs the same secret). */
  | { mode: 'explicit'; secret: Uint8Array }
  /** No E2EE: frames go as the browser encodes them. */
  | { mode: 'none' };

/** Options for `RelaySession.join`. */
export interface JoinOptions {
  /** The relay's WebSocket URL, e.g. `ws://127.0.0.1:8080/v1/rtc`. */
  url: string;
  /** The access token (sent in `join`, never in the URL). */
  token: string;
  /** The room to join (checked against the token's room by the relay). */
  room?: string;
  /** The E2EE instance (already initialized); required unless keys.mode is `none`. */
  e2ee?: HushE2ee;
  keys: KeyMode;
  /**
   * The app backend's Ed25519 public key (32 bytes): the key exchange admits only members whose
   * identity key the backend vouched for. Required with `keys.mode` `exchange` unless
   * `insecureUnvouchedMembers` is set; optional with `shared`.
   */
  backendKey?: Uint8Array;
  /**
   * Asks the app backend to vouch for this session's identity public key (32 bytes): resolves
   * with its attestation (72 bytes, `hush_keys::Attestation`), sent as `join.attestation`. Called
   * once, after the Worker made the identity and before `join`. Required with `backendKey`
   * (members that check attestations refuse a member without one).
   */
  vouch?: (identityKey: Uint8Array) => Promise<Uint8Array>;
  /** Key exchange without `backendKey`: the relay can add members of its own (see `KeyExchangeOptions`). */
  insecureUnvouchedMembers?: boolean;
  /** Local tracks to publish, by source. */
  publish?: Partial<Record<'camera' | 'microphone' | 'screen', MediaStreamTrack>>;
  /**
   * Simulcast for published camera and screen tracks (see `SimulcastOption`): by default up to
   * three encodings chosen from the track's size, and the relay sends each subscriber the one
   * that fits its downlink.
   */
  simulcast?: SimulcastOption;
  /** How long to wait for `joined`. */
  joinTimeoutMs?: number;
  /**
   * Rejoin when the connection to the relay is lost (see the module docs). `token`: a fresh
   * access token from the app backend for each attempt; `maxAttempts`: before giving up with
   * a `close` event (default 10).
   */
  reconnect?: { token: () => Promise<string>; maxAttempts?: number };
}

/** Why the session ended. */
export interface CloseInfo {
  /** The relay's error code (`token_expired`, `room_full`, ...), or `socket_closed`, `left`. */
  code: string;
  message: string;
}

/** Error from `join`. */
export class RelayError extends Error {
  /** The relay's error code, or a local one (`socket_closed`, `join_timeout`, `bad_message`). */
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = 'RelayError';
    this.code = code;
  }
}

/** A parsed relay message: `parse` only lets `v: 1` through. */
type Msg = Record<string, unknown> & { type: string; v: 1 };

/** How often `e2ee_stats` goes to the relay (it counts at most one per 5 s per connection). */
const STATS_INTERVAL_MS = 10_000;

const b64 = (bytes: Uint8Array): string => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
/** Standard base64 to bytes; `null` when it is not base64. */
const unb64 = (text: string): Uint8Array | null => {
  try { return Uint8Array.from(atob(text), (c) => c.charCodeAt(0)); } catch { return null; }
};

/** `joined.ice_servers` as RTCIceServers; entries of any other shape are left out. */
function iceServersOf(value: unknown): RTCIceServer[] {
  if (!Array.isArray(value)) return [];
  const out: RTCIceServer[] = [];
  for (const v of value as Record<string, unknown>[]) {
    const urls = v?.urls;
    if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) continue;
    out.push({
      urls: urls as string[],
      ...(typeof v.username === 'string' ? { username: v.username } : {}),
      ...(typeof v.credential === 'string' ? { credential: v.credential } : {}),
    });
  }
  return out;
}

/** Close codes a rejoin cannot fix. */
const FINAL = new Set(['left', 'removed', 'replaced', 'room_closed', 'room_locked', 'token_wrong_room', 'token_wrong_audience', 'wrong_room']);

/** The wait before reconnect attempt `n` (1, 2, ...): 250 ms doubling to 5 s, with jitter. */
const backoff = (n: number): number => Math.min(5000, 250 * 2 ** (n - 1)) * (0.5 + Math.random() / 2);

/** Relay membership and key messages the Worker's key session needs. */
const KEY_EVENTS = new Set(['joined', 'participant_joined', 'participant_left', 'rekey', 'e2ee']);

/** The relay's refusals of a `record` request (hush-proto's error table). */
const RECORD_ERRORS = new Set([
  'record_not_allowed', 'recorder_not_configured', 'already_recording', 'not_recording', 'room_empty', 'recording_disabled',
]);

/** How long `startRecording` / `stopRecording` wait for the relay's answer. */
const RECORD_TIMEOUT_MS = 10_000;

/**
 * One participant's session with the relay. Events (CustomEvent detail): `track` (RemoteTrack),
 * `trackended` (RemoteTrack), `participantjoined` (Member), `participantleft` ({id}),
 * `close` (CloseInfo), `error` ({code, message}) for non-fatal relay errors, `reconnecting`
 * ({attempt, code, message}) and `reconnected` ({attempts, ms}), `icerestart` ({attempt,
 * state}) when the media path failed while signaling is up and ICE is restarted, `recording`
 * (RecordingState) when the room's recorder joins or leaves the key exchange, and again when
 * the relay's word on who started it or why it ended arrives after that (show a badge to every
 * participant while `active`). Without a key exchange (`keys.mode` `none` or `explicit`)
 * there is nothing to check the relay against: `recording` then follows the relay's message.
 */
export class RelaySession extends EventTarget {
  /** This participant's id. */
  you = '';
  /** This participant's sender index. */
  senderIndex = -1;
  /** The room. */
  room = '';
  /** Other members by id. */
  readonly members = new Map<string, Member>();
  /** Received tracks by track id string (`t<n>` or the browser's id). */
  readonly remote = new Map<string, RemoteTrack>();
  /** Relay track ids of our own published sources. */
  readonly published = new Map<string, number>();
  /** The peer connection (after join). */
  pc: RTCPeerConnection | null = null;
  /** Relay messages that could not be handled, by type. */
  readonly ignored: Record<string, number> = {};
  /** This participant's grants (after join). */
  grants: Grants = { publish: false, subscribe: false, moderator: false, record: false };

  private ws: WebSocket | null = null;
  private closed = false;
  private queue: Promise<void> = Promise.resolve();
  private pendingCandidates: RTCIceCandidateInit[] = [];
  private trackSenders = new Map<number, string>();
  private readonly sent = new Map<string, string>();

  /** The token for the next join (the first from the options, then `reconnect.token()`'s). */
  private token: string;
  /** Whether this session started the Worker's key exchange (a rejoin restarts it). */
  private keysStarted = false;
  /** Bumped when a connection is torn down: messages of an older one are not handled. */
  private generation = 0;

  private constructor(private readonly options: JoinOptions) {
    super();
    this.token = options.token;
  }

  /** Connects, joins, publishes; resolves once `joined` arrived and the first offer is out. */
  static async join(options: JoinOptions): Promise<RelaySession> {
    const s = new RelaySession(options);
    try {
      await s.start();
    } catch (e) {
      s.finish(e instanceof RelayError ? { code: e.code, message: e.message } : { code: 'client_error', message: String(e) });
      throw e;
    }
    return s;
  }

  /**
   * Sends the last `e2ee_stats` report (waiting at most 300 ms for the Worker's counters), then
   * `leave`, and closes.
   */
  async leave(): Promise<void> {
    if (this.closed) return;
    this.leaving = true;
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 300));
    await Promise.race([this.reportStats(true).catch(() => undefined), timeout]);
    this.send({ type: 'leave' });
    this.finish({ code: 'left', message: 'left the room' });
  }

  /** Received-frame totals at the last `e2ee_stats` report (reports carry deltas). */
  private reported = { decrypted: 0, dropped: {} as Record<string, number> };
  private statsTimer: ReturnType<typeof setInterval> | undefined;
  private epoch: number | undefined;

  /**
   * Sends `e2ee_stats`: received frames decrypted and dropped (by reason) since the previous
   * report, and the current epoch, from the Worker's counters. The relay adds them to its
   * `hush_e2ee_*` metrics (diagnostics: no ids, at most one report per 5 s counted, plus one
   * `last`). Sent every 10 s and on leave.
   */
  private async reportStats(last = false): Promise<void> {
    const e2ee = this.options.e2ee;
    if (!e2ee || this.options.keys.mode === 'none' || this.closed) return;
    const stats = await e2ee.getStats();
    let decrypted = 0;
    const dropped: Record<string, number> = {};
    for (const p of stats) {
      for (const t of p.transforms) {
        if (t.side !== 'recv') continue;
        decrypted += t.ok;
        for (const [r, n] of Object.entries(t.dropped)) dropped[r] = (dropped[r] ?? 0) + (n ?? 0);
      }
    }
    // A detached transform takes its counts along: totals may shrink, deltas never go below 0.
    const delta: Record<string, number> = {};
    for (const [r, n] of Object.entries(dropped)) {
      const d = n - (this.reported.dropped[r] ?? 0);
      if (d > 0) delta[r] = d;
    }
    const message: Record<string, unknown> = {
      type: 'e2ee_stats', dropped: delta, decrypted: Math.max(0, decrypted - this.reported.decrypted),
      ...(this.epoch !== undefined ? { epoch: this.epoch } : {}),
      ...(last ? { last: true } : {}),
    };
    this.reported = { decrypted, dropped };
    this.send(message);
  }

  /**
   * Asks the publishers of every received video track for a keyframe. Not before our
   * connection is up: such a keyframe is lost on the way, and a publisher's browser may
   * ignore another request shortly after one (measured: the relay's own request, sent once
   * the connection is up, then often went unanswered and the first frame came 0.5 s later).
   */
  requestKeyframes(): void {
    if (this.pc?.connectionState !== 'connected') return;
    for (const t of this.remote.values()) {
      if (t.trackId !== undefined && t.track.kind === 'video') this.send({ type: 'keyframe_request', track: t.trackId });
    }
  }

  /**
   * Tells the relay the size (device pixels) a received video is shown at, so it sends no
   * simulcast layer much larger (0 x 0: not shown, the lowest layer). `observeTile` calls it
   * for you.
   */
  setVideoSize(remote: RemoteTrack, width: number, height: number): void {
    if (remote.trackId === undefined || remote.track.kind !== 'video') return;
    const clamp = (n: number): number => Math.max(0, Math.min(16_384, Math.round(n)));
    this.send({ type: 'video_size', track: remote.trackId, width: clamp(width), height: clamp(height) });
  }

  /**
   * Reports `element`'s size (the tile `remote` is shown in) to the relay whenever it changes
   * (`setVideoSize`, in device pixels). Returns a function that stops observing.
   */
  observeTile(remote: RemoteTrack, element: Element): () => void {
    let last = '';
    const observer = new ResizeObserver((entries) => {
      const box = entries[entries.length - 1]?.contentRect;
      if (!box) return;
      const ratio = globalThis.devicePixelRatio || 1;
      const size = `${Math.round(box.width * ratio)}x${Math.round(box.height * ratio)}`;
      if (size === last) return;
      last = size;
      this.setVideoSize(remote, box.width * ratio, box.height * ratio);
    });
    observer.observe(element);
    return () => observer.disconnect();
  }

  /** The room's recording state as the last `recording` event gave it. */
  get recording(): RecordingState {
    return { ...this.recordingShown };
  }

  /**
   * Asks the relay to record the room (needs the `record` grant; the app backend must have set
   * the room's recorder). Resolves once the relay announced the recording as started by us;
   * rejects with a `RelayError` whose `code` is the relay's refusal (`record_not_allowed`,
   * `recorder_not_configured`, `already_recording`, `room_empty`, `recording_disabled`), or
   * `record_timeout`, `record_pending` (another request is waiting), `socket_closed` / the close
   * code. That the recorder was admitted to the key exchange is the `recording` event's to say.
   */
  startRecording(): Promise<void> {
    return this.record('start');
  }

  /**
   * Asks the relay to stop recording the room (needs the `record` grant). Resolves once the
   * relay announced the recording as stopped by us; rejects as `startRecording` does
   * (`not_recording` when nothing is recorded).
   */
  stopRecording(): Promise<void> {
    return this.record('stop');
  }

  private recordRequest: {
    active: boolean; resolve: () => void; reject: (e: RelayError) => void; timer: ReturnType<typeof setTimeout>;
  } | null = null;

  private record(action: 'start' | 'stop'): Promise<void> {
    if (this.closed || this.ws?.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RelayError('socket_closed', 'not connected to the relay'));
    }
    if (this.recordRequest) return Promise.reject(new RelayError('record_pending', 'a record request is waiting for the relay'));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.settleRecord(new RelayError('record_timeout', 'no answer from the relay')), RECORD_TIMEOUT_MS);
      this.recordRequest = { active: action === 'start', resolve, reject, timer };
      this.send({ type: 'record', action });
    });
  }

  /** Ends the pending record request: resolved without `error`, rejected with it. */
  private settleRecord(error?: RelayError): void {
    const r = this.recordRequest;
    if (!r) return;
    this.recordRequest = null;
    clearTimeout(r.timer);
    if (error) r.reject(error); else r.resolve();
  }

  /** Whether the key exchange runs here (it says whether a recorder is a member). */
  private get keyExchange(): boolean {
    return Boolean(this.options.e2ee) && (this.options.keys.mode === 'exchange' || this.options.keys.mode === 'shared');
  }

  /** The key exchange's word: the recorder is (not) a member. */
  private recorderMember = false;
  /** The relay's last `recording` message. */
  private recordingAnnounced: RecordingState | null = null;
  /** What the last `recording` event said. */
  private recordingShown: RecordingState = { active: false };

  /**
   * Emits `recording` when what it would say changed: `active` from the key exchange (or,
   * without one, the relay), `by` and `reason` from the relay when it agrees.
   */
  private updateRecording(): void {
    const announced = this.recordingAnnounced;
    const active = this.keyExchange ? this.recorderMember : announced?.active === true;
    const agreed = announced?.active === active ? announced : null;
    const next: RecordingState = {
      active, ...(agreed?.by !== undefined ? { by: agreed.by } : {}), ...(agreed?.reason !== undefined ? { reason: agreed.reason } : {}),
    };
    const shown = this.recordingShown;
    if (next.active === shown.active && next.by === shown.by && next.reason === shown.reason) return;
    this.recordingShown = next;
    this.dispatchEvent(new CustomEvent('recording', { detail: { ...next } }));
  }

  private onRecordingMessage(m: Msg): void {
    const active = m.active === true;
    const by = typeof m.by === 'string' ? m.by : undefined;
    const reason = RECORDING_ENDS.find((r) => r === m.reason);
    this.recordingAnnounced = { active, ...(by !== undefined ? { by } : {}), ...(reason !== undefined ? { reason } : {}) };
    if (this.recordRequest && this.recordRequest.active === active && by === this.you) this.settleRecord();
    this.updateRecording();
  }

  /** The member owning `senderIndex`. */
  memberBySenderIndex(index: number): Member | undefined {
    for (const m of this.members.values()) if (m.senderIndex === index) return m;
    return undefined;
  }

  private send(message: Record<string, unknown>): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ v: 1, ...message }));
  }

  private async start(): Promise<void> {
    const { e2ee, keys } = this.options;
    if (keys.mode !== 'none' && !e2ee) throw new RelayError('bad_argument', 'E2EE needs an initialized HushE2ee');
    // Without the key exchange, the 32 bytes announced as the identity key are this session's
    // fresh random nonce: explicit mode mixes it into our send keys (see `explicitKey`).
    let identityKey: Uint8Array = crypto.getRandomValues(new Uint8Array(32));
    this.senderNonce = identityKey;
    let attestation: Uint8Array | undefined;
    if (e2ee && (keys.mode === 'exchange' || keys.mode === 'shared')) {
      const { backendKey, vouch, insecureUnvouchedMembers } = this.options;
      if (backendKey && !vouch) {
        throw new RelayError('bad_argument', 'backendKey needs vouch: the other members refuse a member without an attestation');
      }
      // A rejoin is a join in the key exchange: a new member with a new identity.
      identityKey = this.keysStarted
        ? await e2ee.rejoinKeyExchange()
        : await e2ee.startKeyExchange({
          mode: keys.mode,
          sharedSecret: keys.mode === 'shared' ? keys.secret : undefined,
          ...(backendKey ? { backendKey } : {}),
          ...(insecureUnvouchedMembers ? { insecureUnvouchedMembers: true } : {}),
          send: (m) => this.send(m),
        });
      const first = !this.keysStarted;
      this.keysStarted = true;
      // The two-step join: the backend vouches for the identity the Worker just made.
      if (vouch) {
        attestation = await vouch(identityKey.slice());
        if (!(attestation instanceof Uint8Array) || attestation.length !== 72) {
          throw new RelayError('bad_attestation', 'vouch must resolve with the 72-byte attestation');
        }
      }
      if (first) {
        e2ee.addEventListener('keyframewanted', () => this.requestKeyframes());
        e2ee.addEventListener('recording', (e) => {
          if (this.closed) return;
          this.recorderMember = (e as CustomEvent<{ active: boolean }>).detail.active === true;
          this.updateRecording();
        });
        e2ee.addEventListener('keychange', (e) => {
          const change = (e as CustomEvent<{ type: string; epoch?: number }>).detail;
          if (change.type === 'switched' && change.epoch !== undefined) this.epoch = change.epoch;
        });
      }
    }
    const ws = new WebSocket(this.options.url);
    this.ws = ws;
    const joined = await new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new RelayError('join_timeout', 'no joined from the relay')); ws.close(); }, this.options.joinTimeoutMs ?? 10_000);
      ws.onopen = () => {
        this.send({
          type: 'join', token: this.token, identity_key: b64(identityKey),
          ...(attestation ? { attestation: b64(attestation) } : {}),
          ...(this.options.room ? { room: this.options.room } : {}),
          // Publishing at join: we send the first offer (the relay waits for it); otherwise
          // the relay offers what it forwards at once.
          offers_first: Object.values(this.options.publish ?? {}).some((t) => t),
        });
      };
      ws.onmessage = (e) => {
        const m = parse(e.data);
        if (m?.type === 'joined') {
          clearTimeout(timer);
          // The room we set out to join (ours or our token's): a relay that answers with
          // another room, whose members' attestations it holds, is refused before any key
          // exchange. Attestations are checked against the room `joined` names.
          const expected = this.options.room ?? roomOfToken(this.token);
          if (expected !== undefined && m.room !== expected) {
            reject(new RelayError('wrong_room', `the relay answered for another room than ${JSON.stringify(expected)}`));
            ws.close();
            return;
          }
          resolve(m);
          return;
        }
        if (m?.type === 'error') { clearTimeout(timer); reject(new RelayError(String(m.code), String(m.message ?? ''))); }
      };
      ws.onclose = (e) => { clearTimeout(timer); reject(new RelayError('socket_closed', `closed before joined (${e.code})`)); };
    });
    if (e2ee && keys.mode !== 'none') {
      this.statsTimer = setInterval(() => { this.reportStats().catch(() => undefined); }, STATS_INTERVAL_MS);
    }
    // Relay messages wait until the connection is set up, then run one at a time.
    const setup = this.onJoined(joined);
    this.queue = setup.catch(() => undefined);
    const generation = this.generation;
    ws.onmessage = (e) => {
      const m = parse(e.data);
      if (!m) { this.ignored.bad_message = (this.ignored.bad_message ?? 0) + 1; return; }
      if (m.type === 'error') this.lastError = { code: String(m.code), message: String(m.message ?? '') };
      this.queue = this.queue.then(() => (generation === this.generation ? this.handle(m) : undefined)).catch((err) => {
        this.ignored[m.type] = (this.ignored[m.type] ?? 0) + 1;
        this.dispatchEvent(new CustomEvent('error', { detail: { code: 'client_error', message: `${m.type}: ${String(err)}` } }));
      });
    };
    ws.onclose = (e) => this.lost({ code: this.lastError?.code ?? 'socket_closed', message: this.lastError?.message ?? `socket closed (${e.code})` });
    await setup;
  }

  private leaving = false;
  private reconnecting = false;

  /** The socket closed: rejoin (see the module docs) or end the session. */
  private lost(info: CloseInfo): void {
    if (this.closed || this.leaving || this.reconnecting) return;
    if (!this.options.reconnect || FINAL.has(info.code)) { this.finish(info); return; }
    void this.reconnect(info);
  }

  private async reconnect(info: CloseInfo): Promise<void> {
    const reconnect = this.options.reconnect;
    if (!reconnect) return;
    this.reconnecting = true;
    const started = Date.now();
    this.teardown();
    let last = info;
    const max = reconnect.maxAttempts ?? 10;
    for (let attempt = 1; attempt <= max && !this.closed; attempt++) {
      this.dispatchEvent(new CustomEvent('reconnecting', { detail: { attempt, code: last.code, message: last.message } }));
      await new Promise((r) => setTimeout(r, backoff(attempt)));
      if (this.closed) return;
      try {
        this.token = await reconnect.token();
        await this.start();
        this.reconnecting = false;
        this.dispatchEvent(new CustomEvent('reconnected', { detail: { attempts: attempt, ms: Date.now() - started } }));
        return;
      } catch (e) {
        last = e instanceof RelayError ? { code: e.code, message: e.message } : { code: 'client_error', message: String(e) };
        this.teardown();
        if (FINAL.has(last.code)) break;
      }
    }
    this.reconnecting = false;
    this.finish(last);
  }

  /** ICE restarts done for this connection, and when the last one was. */
  private iceRestarts = 0;
  private iceRestartTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * ICE failed, or stayed disconnected for 3 s, while signaling is up (a path that went away:
   * a TURN server restarted, a NAT binding changed): restart ICE with a new offer, at most 3
   * times in a row; after that, or when it comes back by itself, nothing more. A blip recovers
   * on its own before the 3 s. A lost socket is `reconnect`'s case, not this one.
   */
  private iceChanged(pc: RTCPeerConnection): void {
    if (pc !== this.pc || this.closed) return;
    clearTimeout(this.iceRestartTimer);
    const state = pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') { this.iceRestarts = 0; return; }
    const restart = () => {
      if (pc !== this.pc || this.closed || this.iceRestarts >= 3) return;
      this.iceRestarts++;
      this.dispatchEvent(new CustomEvent('icerestart', { detail: { attempt: this.iceRestarts, state: pc.iceConnectionState } }));
      pc.restartIce();
      this.queue = this.queue.then(() => this.offer()).catch(() => undefined);
    };
    if (state === 'failed') restart();
    else if (state === 'disconnected') this.iceRestartTimer = setTimeout(restart, 3000);
  }

  /** Drops the connection and everything learnt over it, for a rejoin. */
  private teardown(): void {
    this.generation++;
    clearInterval(this.statsTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
    }
    this.pc?.close();
    this.pc = null;
    clearTimeout(this.iceRestartTimer);
    this.iceRestarts = 0;
    for (const t of this.remote.values()) this.dispatchEvent(new CustomEvent('trackended', { detail: t }));
    this.remote.clear();
    for (const id of this.members.keys()) this.dispatchEvent(new CustomEvent('participantleft', { detail: { id } }));
    this.members.clear();
    this.published.clear();
    this.sent.clear();
    this.trackSenders.clear();
    this.pendingCandidates = [];
    this.publishing = [];
    this.lastOwnOffer = undefined;
    this.lastError = null;
    this.reported = { decrypted: 0, dropped: {} };
    this.epoch = undefined;
    this.queue = Promise.resolve();
    // The next connection's key exchange says again whether a recorder is a member.
    this.settleRecord(new RelayError('socket_closed', 'the connection to the relay was lost'));
    this.recorderMember = false;
    this.recordingAnnounced = null;
    this.updateRecording();
  }

  private lastError: CloseInfo | null = null;
  /** Explicit mode: the random nonce this session announced (as its `identity_key`). */
  private senderNonce: Uint8Array = new Uint8Array(0);

  private async onJoined(m: Msg): Promise<void> {
    this.you = String(m.you);
    this.senderIndex = Number(m.sender_index);
    this.room = String(m.room);
    const g = (m.grants ?? {}) as Record<string, unknown>;
    this.grants = { publish: g.publish === true, subscribe: g.subscribe === true, moderator: g.moderator === true, record: g.record === true };
    for (const p of (m.participants as Msg[] | undefined) ?? []) this.addMember(p);
    for (const t of (m.tracks as Msg[] | undefined) ?? []) this.trackSenders.set(Number(t.track), String(t.participant));
    const { e2ee, keys } = this.options;
    if (e2ee && keys.mode === 'explicit') await this.installExplicitKeys();
    this.keyEvent(m);

    // TURN servers from the relay (short-lived credentials minted for us), for networks that
    // block UDP to the relay.
    const iceServers = iceServersOf(m.ice_servers);
    const config: RTCConfiguration = iceServers.length > 0 ? { iceServers } : {};
    const pc = new RTCPeerConnection(e2ee ? e2ee.peerConnectionConfig(config) : config);
    this.pc = pc;
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      this.send({
        type: 'candidate', candidate: e.candidate.candidate,
        ...(e.candidate.sdpMid != null ? { sdp_mid: e.candidate.sdpMid } : {}),
        ...(e.candidate.sdpMLineIndex != null ? { sdp_m_line_index: e.candidate.sdpMLineIndex } : {}),
        ...(e.candidate.usernameFragment != null ? { username_fragment: e.candidate.usernameFragment } : {}),
      });
    };
    pc.ontrack = (e) => this.onTrack(e);
    pc.addEventListener('iceconnectionstatechange', () => this.iceChanged(pc));

    const publish = Object.entries(this.options.publish ?? {}).filter(([, t]) => t) as [Source, MediaStreamTrack][];
    if (publish.length === 0) return; // Nothing to publish: wait for the relay's offer.
    const stream = new MediaStream(publish.map(([, t]) => t));
    const transceivers: [Source, RTCRtpTransceiver][] = [];
    for (const [source, track] of publish) {
      const encodings = sendEncodings(track.kind, track.getSettings().height, this.options.simulcast);
      const t = pc.addTransceiver(track, {
        direction: 'sendonly', streams: [stream], ...(encodings ? { sendEncodings: encodings } : {}),
      });
      if (e2ee && keys.mode !== 'none') e2ee.attachSender(t.sender, { source, kind: track.kind as 'audio' | 'video' });
      transceivers.push([source, t]);
    }
    this.publishing = transceivers;
    await this.offer();
  }

  private publishing: [Source, RTCRtpTransceiver][] = [];
  private lastOwnOffer: string | undefined;

  /** Creates and sends our offer, announcing each publishing transceiver's mid first. */
  private async offer(): Promise<void> {
    const pc = this.pc;
    if (!pc || this.closed || pc.signalingState !== 'stable') return;
    await pc.setLocalDescription(await pc.createOffer());
    this.lastOwnOffer = pc.localDescription?.sdp;
    for (const [source, t] of this.publishing) {
      if (this.sent.has(source)) continue;
      // The relay matches a publication to incoming media by mid, or by kind without one. A
      // rollback (glare with the relay's offer) can change our mids, and a second `publish` is
      // refused: so the mid goes along only where the kind alone is ambiguous.
      const kind = t.sender.track?.kind;
      const ambiguous = this.publishing.filter(([, o]) => o.sender.track?.kind === kind).length > 1;
      const mid = ambiguous ? t.mid ?? undefined : undefined;
      this.sent.set(source, mid ?? '');
      this.send({ type: 'publish', source, ...(mid !== undefined ? { mid } : {}) });
    }
    this.send({ type: 'offer', sdp: pc.localDescription?.sdp ?? '' });
  }

  /**
   * Answers the relay's offer. On the first exchange (the relay offered first: we publish
   * nothing) we take the DTLS server role (`a=setup:passive`): the relay is then the DTLS
   * client and starts the handshake once its own ICE check succeeded. As the DTLS client
   * the browser sends its ClientHello as soon as its side of ICE is up, which is often before
   * the relay's (the relay is the controlling agent then), and the relay drops it; the
   * browser's retransmission then cost about 1.5 s of every such join. A browser that refuses
   * the role keeps its own answer.
   */
  private async answerRelay(pc: RTCPeerConnection): Promise<void> {
    const answer = await pc.createAnswer();
    if (!pc.currentLocalDescription && answer.sdp?.includes('a=setup:active')) {
      try {
        await pc.setLocalDescription({ type: 'answer', sdp: answer.sdp.replace(/a=setup:active/g, 'a=setup:passive') });
        return;
      } catch { /* keep the browser's role */ }
    }
    await pc.setLocalDescription(answer);
  }

  private async handle(m: Msg): Promise<void> {
    const pc = this.pc;
    this.keyEvent(m);
    switch (m.type) {
      case 'offer': {
        if (!pc) return;
        const ours = pc.signalingState === 'have-local-offer';
        if (ours) await pc.setLocalDescription({ type: 'rollback' });
        // Our own offers count too: after a rollback nothing is current yet, but the browser
        // numbers our next offer the way it numbered the last one.
        const known = extmapIds(pc.currentLocalDescription?.sdp, pc.currentRemoteDescription?.sdp, this.lastOwnOffer);
        await pc.setRemoteDescription({ type: 'offer', sdp: alignExtmapIds(String(m.sdp), known) });
        await this.flushCandidates();
        await this.answerRelay(pc);
        this.send({ type: 'answer', sdp: pc.localDescription?.sdp ?? '' });
        // Candidates we trickled with the rolled-back offer reached a relay that had no
        // description of ours yet: send them again (the browser keeps them in the description).
        if (ours) this.resendCandidates();
        // Polite peer: our rolled-back offer goes out again (with any new mids).
        if (ours || this.publishing.some(([, t]) => t.mid === null || t.currentDirection === null)) await this.offer();
        return;
      }
      case 'answer':
        if (!pc || pc.signalingState !== 'have-local-offer') return; // Stale: we rolled back.
        await pc.setRemoteDescription({ type: 'answer', sdp: keepDtlsRole(String(m.sdp), pc.currentLocalDescription?.sdp) });
        await this.flushCandidates();
        return;
      case 'candidate': {
        const c: RTCIceCandidateInit = {
          candidate: String(m.candidate ?? ''),
          sdpMid: (m.sdp_mid as string | undefined) ?? null,
          sdpMLineIndex: (m.sdp_m_line_index as number | undefined) ?? null,
          usernameFragment: (m.username_fragment as string | undefined) ?? null,
        };
        if (!c.candidate) return;
        if (!pc?.remoteDescription) { this.pendingCandidates.push(c); return; }
        await pc.addIceCandidate(c).catch(() => { this.ignored.candidate = (this.ignored.candidate ?? 0) + 1; });
        return;
      }
      case 'participant_joined': {
        const p = m.participant as Msg;
        const member = this.addMember(p);
        if (this.options.keys.mode === 'explicit') await this.addExplicitRecvKeys(member);
        this.dispatchEvent(new CustomEvent('participantjoined', { detail: member }));
        return;
      }
      case 'participant_left': {
        const id = String(m.participant);
        this.members.delete(id);
        for (const [track, who] of this.trackSenders) if (who === id) this.trackSenders.delete(track);
        this.dispatchEvent(new CustomEvent('participantleft', { detail: { id } }));
        return;
      }
      case 'track_published':
        this.trackSenders.set(Number(m.track), String(m.participant));
        if (String(m.participant) === this.you) this.published.set(String(m.source), Number(m.track));
        return;
      case 'track_unpublished':
        this.trackSenders.delete(Number(m.track));
        for (const [key, t] of this.remote) {
          if (t.trackId === Number(m.track)) {
            this.remote.delete(key);
            this.dispatchEvent(new CustomEvent('trackended', { detail: t }));
          }
        }
        return;
      case 'recording':
        this.onRecordingMessage(m);
        return;
      case 'error':
        if (m.fatal === true) return;
        // The refusal of our record request rejects it (and is not an `error` event too).
        if (this.recordRequest && RECORD_ERRORS.has(String(m.code))) {
          this.settleRecord(new RelayError(String(m.code), String(m.message ?? '')));
          return;
        }
        this.dispatchEvent(new CustomEvent('error', { detail: this.lastError }));
        return;
      case 'joined': case 'e2ee': case 'rekey': case 'keyframe_request': case 'room_locked': case 'pong':
        return;
      default:
        this.ignored[m.type] = (this.ignored[m.type] ?? 0) + 1;
    }
  }

  private keyEvent(m: Msg): void {
    const { e2ee, keys } = this.options;
    if (e2ee && (keys.mode === 'exchange' || keys.mode === 'shared') && KEY_EVENTS.has(m.type)) e2ee.relayEvent(m);
  }

  private resendCandidates(): void {
    const sdp = this.pc?.localDescription?.sdp ?? '';
    let mid: string | undefined;
    let index = -1;
    for (const line of sdp.split(/\r?\n/)) {
      if (line.startsWith('m=')) { index++; mid = undefined; }
      else if (line.startsWith('a=mid:')) mid = line.slice(6).trim();
      else if (line.startsWith('a=candidate:') && index === 0) {
        // BUNDLE: one transport, so the first m-section's candidates are all of them.
        this.send({ type: 'candidate', candidate: line.slice(2).trim(), sdp_m_line_index: 0, ...(mid !== undefined ? { sdp_mid: mid } : {}) });
      }
    }
  }

  private async flushCandidates(): Promise<void> {
    const pc = this.pc;
    if (!pc) return;
    const pending = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const c of pending) await pc.addIceCandidate(c).catch(() => undefined);
  }

  private addMember(p: Msg): Member {
    const member: Member = {
      id: String(p.id), senderIndex: Number(p.sender_index), joinSeq: Number(p.join_seq), identityKey: String(p.identity_key ?? ''),
      role: p.role === 'recorder' ? 'recorder' : 'participant',
    };
    this.members.set(member.id, member);
    return member;
  }

  private onTrack(e: RTCTrackEvent): void {
    const streamId = e.streams[0]?.id ?? '';
    const senderIndex = /^p(\d+)$/.exec(streamId)?.[1];
    const trackId = /^t(\d+)$/.exec(e.track.id)?.[1];
    const index = senderIndex === undefined ? undefined : Number(senderIndex);
    const tid = trackId === undefined ? undefined : Number(trackId);
    const participant = (index !== undefined ? this.memberBySenderIndex(index)?.id : undefined)
      ?? (tid !== undefined ? this.trackSenders.get(tid) : undefined);
    const { e2ee, keys } = this.options;
    // The answering side's ontrack runs inside setRemoteDescription, before our answer: in time.
    if (e2ee && keys.mode !== 'none' && !e2ee.isAttached(e.receiver)) e2ee.attachReceiver(e.receiver, { participant });
    const remote: RemoteTrack = { participant, senderIndex: index, trackId: tid, track: e.track, receiver: e.receiver };
    this.remote.set(e.track.id, remote);
    this.dispatchEvent(new CustomEvent('track', { detail: remote }));
  }

  /**
   * Explicit mode: one key per (sender, context), derived from the shared secret, the KID and
   * the sender's own random nonce (see `explicitKey`).
   */
  private async installExplicitKeys(): Promise<void> {
    const { e2ee, keys } = this.options;
    if (!e2ee || keys.mode !== 'explicit') return;
    for (const ctx of [CONTEXTS.microphone, CONTEXTS.camera, CONTEXTS.screen, CONTEXTS.screen_audio]) {
      const kid = explicitKid(this.senderIndex, ctx);
      // The Worker gets a copy; the page's bytes are zeroed once handed over.
      const key = await explicitKey(keys.secret, kid, this.senderNonce);
      try { await e2ee.setSendKey(kid, key, ctx); } finally { key.fill(0); }
    }
    for (const m of this.members.values()) await this.addExplicitRecvKeys(m);
  }

  private async addExplicitRecvKeys(member: Member): Promise<void> {
    const { e2ee, keys } = this.options;
    if (!e2ee || keys.mode !== 'explicit') return;
    // A nonce that does not decode gives no key: that sender's frames are dropped and counted.
    const nonce = unb64(member.identityKey);
    if (!nonce || nonce.length !== 32) return;
    for (const ctx of [0, 1, 2, 3]) {
      const kid = explicitKid(member.senderIndex, ctx);
      // Bound to the member: only its tracks open frames under this key. The page's bytes are
      // zeroed once the Worker has its copy.
      const key = await explicitKey(keys.secret, kid, nonce);
      try { await e2ee.addRecvKey(kid, key, { participant: member.id }); } finally { key.fill(0); }
    }
  }

  private finish(info: CloseInfo): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.statsTimer);
    this.settleRecord(new RelayError(info.code, info.message));
    this.pc?.close();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
    this.dispatchEvent(new CustomEvent('close', { detail: info }));
  }
}

/**
 * KID for explicit mode: `(senderIndex << 4) | context`, the context (0 to 3, `CONTEXTS`) in the
 * low 4 bits. This is its own layout, not hush-keys' (`(context << 32) | (senderIndex << 8) |
 * epoch mod 256`, crates/hush-keys/src/kid.rs): explicit keys have no epoch. `explicitKey`
 * derives each key from the shared secret, this KID and the sender's announced nonce, so every
 * member computes the same key for a (sender, context).
 */
export function explicitKid(senderIndex: number, context: number): bigint {
  return (BigInt(senderIndex) << 4n) | BigInt(context & 0xf);
}

/**
 * The explicit-mode key of one KID: `HKDF-SHA256(ikm = secret, salt = senderNonce, info =
 * "hush explicit v2 " || kid)`, 16 bytes. `senderNonce` is the 32 random bytes the sender drew
 * for this session and announced as its `identity_key`. Every other input is the relay's (the
 * sender index, restarted in every life of a room) or the app's (the secret), so without the
 * nonce a relay that gives two members one index, or a room's second life, would put two
 * encryptors with counters from 0 under one key: (key, nonce) reuse. With it, two sessions
 * share a key only if they drew the same 32 random bytes. A relay that announces a wrong nonce
 * only makes that sender's frames undecryptable.
 */
export async function explicitKey(secret: Uint8Array, kid: bigint, senderNonce: Uint8Array): Promise<Uint8Array> {
  const base = await crypto.subtle.importKey('raw', secret as BufferSource, 'HKDF', false, ['deriveBits']);
  const info = new TextEncoder().encode(`hush explicit v2 ${kid}`);
  const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: senderNonce as BufferSource, info }, base, 128);
  return new Uint8Array(bits);
}

/**
 * The `room` claim of a JWT, read without verifying it (the token came from our own backend):
 * the room this session sets out to join when `options.room` is not given.
 */
export function roomOfToken(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    const room = (claims as { room?: unknown } | null)?.room;
    return typeof room === 'string' && room !== '' ? room : undefined;
  } catch {
    return undefined;
  }
}

function parse(data: unknown): Msg | null {
  if (typeof data !== 'string' || data.length > 1 << 20) return null;
  try {
    const m = JSON.parse(data) as unknown;
    if (m && typeof m === 'object' && typeof (m as Msg).type === 'string' && (m as Msg).v === 1) return m as Msg;
  } catch {
    // Not JSON: dropped and counted by the caller.
  }
  return null;
}
