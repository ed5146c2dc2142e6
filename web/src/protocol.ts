/** Messages between the page and the Hush Worker: one discriminated union each way. */

/** Layout codes shared with hush-wasm: 0 pure, 1 Opus, 2 VP8, 3 VP9, 4 H.264, 5 H.265, 6 AV1. */
export type LayoutCode = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/** Options passed to `new RTCRtpScriptTransform(worker, options)`. */
export interface TransformOptions {
  side: 'send' | 'recv';
  kind: 'audio' | 'video';
  /** Label for stats (a participant id or track id). */
  id: string;
  /**
   * Send side: the stream context whose key the transform seals with (0 microphone,
   * 1 camera, 2 screen, 3 screen audio). Default 0 for audio, 1 for video.
   */
  context?: number;
  /**
   * Receive side: the remote participant whose media this track carries (reported in stats and
   * events). The transform then opens only that participant's frames (its receive keys, bound
   * by the key exchange or by `addRecvKey`'s `participant`), in one replay window per KID that
   * every transform of that participant shares: another sender's frame is dropped as
   * `wrong_sender`, a frame already accepted on any of the participant's tracks as `replayed`.
   * Without it the transform opens only the frames of keys added without a participant
   * (`addRecvKey(kid, key)`), with replay windows of its own: a key bound to a participant,
   * which every key of the key exchange is, never opens frames there (`wrong_sender`).
   */
  participant?: string;
}

/** Page -> Worker. */
export type ToWorker =
  | {
      kind: 'init'; wasmUrl: string; suite: number;
      /** `false` keeps every frame in wasm (no WebCrypto path); default on for suites 4, 5. */
      hostAead?: boolean;
    }
  /** Sets the key of stream `context`, or of every context when it is left out. */
  | { kind: 'setSendKey'; kid: bigint; key: Uint8Array; context?: number }
  /**
   * Adds a receive key. `participant`: the sender whose frames it opens; only transforms
   * attached for that participant use it. Without it only transforms attached without a
   * participant (the legacy path) do.
   */
  | { kind: 'addRecvKey'; kid: bigint; key: Uint8Array; participant?: string }
  | { kind: 'removeRecvKey'; kid: bigint }
  | { kind: 'stats' }
  /**
   * Key exchange (worker-keys.ts): start a key session in the Worker, which draws its own
   * randomness (nothing random crosses from the page). `sharedSecret` (at least 32 random
   * bytes) only with mode `shared`, wiped in the Worker after use. Answered by
   * `keysIdentity`. A second `keysStart` replaces the session (a new identity: join again).
   * Membership: `backendKey` (the app backend's 32-byte Ed25519 public key) admits only members
   * the backend vouched for; without it the Worker refuses to start unless
   * `insecureUnvouchedMembers` is set (the relay can then add members of its own).
   */
  | { kind: 'keysStart'; mode: 'exchange' | 'shared'; sharedSecret?: Uint8Array; backendKey?: Uint8Array; insecureUnvouchedMembers?: boolean }
  /**
   * A relay message for the key exchange, as parsed from the WebSocket (base64 fields as
   * received): `joined`, `participant_joined`, `participant_left`, `rekey` or `e2ee`.
   */
  | { kind: 'relayEvent'; event: RelayMessage };

/** A hush-proto message object (`{v: 1, type, ...}`), either direction. */
export interface RelayMessage {
  v: number;
  type: string;
  [field: string]: unknown;
}

/** What the key exchange tells the page. */
export type KeyEvent =
  /** The relay admitted this member (hush-participant's `Event` names, one vocabulary). */
  | { type: 'joined'; participant: string; senderIndex: number }
  /** The relay announced a participant (a member of the key exchange unless refused). */
  | { type: 'memberJoined'; participant: string; senderIndex: number }
  /** The relay announced a departure (`left`, `disconnected`, `removed`, `replaced`). */
  | { type: 'memberLeft'; participant: string; reason: string }
  /** Receive keys for this epoch are installed. */
  | { type: 'epoch'; epoch: number }
  /** Local streams now send on this epoch. */
  | { type: 'switched'; epoch: number }
  /** The safety code to compare out of band: 25 digits in five groups, `01234 56789 01234 56789 01234`. */
  | { type: 'safetyCode'; code: string }
  /** A new key arrived from the committer: ask publishers for a keyframe. */
  | { type: 'keyframeWanted' }
  /** A member was refused (bad key, duplicate, ...): it gets no keys. */
  | { type: 'memberRefused'; participant: string; reason: string }
  /** This member was removed: every key is retired. */
  | { type: 'removed' }
  /**
   * Another member left or was removed and the epoch that excludes it is late (2 s): local
   * streams stopped sending (frames are dropped, not sent under a key the leaver holds) until
   * it comes; `switched` ends it.
   */
  | { type: 'keyAwaited'; epoch: number }
  /**
   * The room's recorder was admitted to the key exchange (`true`: every epoch from now on is
   * sealed to it too) or left it (`false`). Only a recorder the backend vouched for in the
   * recorder role is admitted, so this, not the relay's `recording` message, says whether the
   * call is being recorded.
   */
  | { type: 'recording'; active: boolean }
  /** The committer has not answered within 10 s: its key for `epoch` is still awaited. */
  | { type: 'committerStalled'; epoch: number; committer: string }
  /**
   * This participant is the committer and no fresh epoch came 90 s past its rekey timer: the
   * relay withholds or rewrites rekey points. Keys still ratchet; fresh secrets enter only at
   * leaves until the next fresh epoch.
   */
  | { type: 'rekeyOverdue'; epoch: number }
  /**
   * The committer sealed this participant the secret of `epoch` for another member list than
   * the one the relay showed it: not used. The relay shows members different rosters.
   */
  | { type: 'rosterMismatch'; epoch: number; committer: string }
  /** A refused input (a stable code such as `malformed`, `forged`, `stale_event`); nothing changed. */
  | { type: 'error'; reason: string };

/**
 * Why a frame was dropped: the wire names of hush-proto's `E2eeDropReason`, which are also the
 * `e2ee_stats` keys and the relay's metric labels. The frame layer's reasons (hush-wasm's
 * `lastError` codes) come from hush-frame's `DropReason`; `duplicate` (hybrid.ts),
 * `wrong_sender` and `before_join` (receivers.ts), `no_key` and `encrypt_failed` (send side) are the transforms'
 * own; `other` is anything else. A Rust test
 * (hush-proto `drop_reasons_are_one_vocabulary_...`) fails when this list and the Rust one differ.
 */
export type DropReason =
  | 'unencrypted'
  | 'malformed_header'
  | 'truncated'
  | 'unknown_kid'
  | 'replayed'
  /** A byte-identical copy of a frame already decrypted (browsers re-deliver some; harmless). */
  | 'duplicate'
  | 'auth_failed'
  | 'too_large'
  | 'encrypt_failed'
  | 'no_key'
  | 'other'
  /**
   * On a transform attached for one participant: the frame is under another sender's key (the
   * relay put it on a track that is not its sender's, or a key with no known sender).
   */
  | 'wrong_sender'
  /**
   * Sealed before this member joined, under an epoch it never holds: a newcomer's first frames
   * can be (the others seal under the old epoch until it has the new one). Counted, but no
   * `decryptFailure`: expected at every join. Told apart for the grace period after the join
   * only (hush-keys `Session::predates_join`); later such a frame is `unknown_kid`.
   */
  | 'before_join';

/** Per-transform counters. */
export interface TransformStats {
  id: string;
  side: 'send' | 'recv';
  kind: 'audio' | 'video';
  /** Send side: the stream context. */
  context?: number;
  /** Receive side: the remote participant, when the page named it. */
  participant?: string;
  /** Frames that entered the transform. */
  frames: number;
  /** Frames that left it, encrypted or decrypted. */
  ok: number;
  /** Frames dropped, by reason. */
  dropped: Partial<Record<DropReason, number>>;
  /** Bytes that entered the transform. */
  bytes: number;
  /** Frames that went through WebCrypto (the rest through wasm). */
  host: number;
  /** The transform ended (its track stopped); the Worker keeps the newest 64 of these. */
  ended?: boolean;
}

/** Worker -> page. */
export type FromWorker =
  | { kind: 'initAck' }
  | { kind: 'ack'; of: ToWorker['kind'] }
  | { kind: 'stats'; transforms: TransformStats[] }
  /**
   * A receive transform dropped frames: the first drop for a reason at once, then at most
   * one event per transform and reason per second. `total` counts every drop for the reason.
   */
  | { kind: 'decryptFailure'; id: string; participant?: string; reason: DropReason; total: number }
  /**
   * A send transform dropped frames instead of sending them: `no_key` (sending stopped: the
   * context's key was taken away, after this transform had sealed under one; frames before its
   * first key are not reported, though `total` counts them) or `encrypt_failed`. Rate-limited
   * as `decryptFailure`.
   */
  | { kind: 'encryptFailure'; id: string; context: number; reason: 'no_key' | 'encrypt_failed'; total: number }
  | { kind: 'error'; reason: 'not_initialized' | 'bad_message' | 'wasm_failed' | 'bad_argument'; detail: string }
  /** The identity public key for `join.identity_key` (answer to `keysStart`). */
  | { kind: 'keysIdentity'; identityKey: Uint8Array }
  /** A ClientMessage (`e2ee {to, payload}` or `rekey`) for the page to send to the relay as is. */
  | { kind: 'relaySend'; message: RelayMessage }
  /** A key exchange event. */
  | { kind: 'keyEvent'; event: KeyEvent };
