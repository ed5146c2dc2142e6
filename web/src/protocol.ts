/** Messages between the page and the Hush Worker: one discriminated union each way. */

/** Layout codes shared with hush-wasm: 0 pure, 1 Opus, 2 VP8, 3 VP9, 4 H.264, 5 H.265, 6 AV1. */
export type LayoutCode = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/** Options passed to `new RTCRtpScriptTransform(worker, options)`. */
export interface TransformOptions {
  side: 'send' | 'recv';
  kind: 'audio' | 'video';
  /** Label for stats (a participant id or track id). */
  id: string;
}

/** Page -> Worker. */
export type ToWorker =
  | { kind: 'init'; wasmUrl: string; suite: number }
  | { kind: 'setSendKey'; kid: bigint; key: Uint8Array }
  | { kind: 'addRecvKey'; kid: bigint; key: Uint8Array }
  | { kind: 'removeRecvKey'; kid: bigint }
  | { kind: 'stats' };

/** Why a frame was dropped (matches hush-wasm's `lastError` codes). */
export type DropReason =
  | 'unencrypted'
  | 'malformed_header'
  | 'truncated'
  | 'unknown_kid'
  | 'replayed'
  | 'auth_failed'
  | 'too_large'
  | 'encrypt_failed'
  | 'no_key';

/** Per-transform counters. */
export interface TransformStats {
  id: string;
  side: 'send' | 'recv';
  kind: 'audio' | 'video';
  frames: number;
  ok: number;
  dropped: Partial<Record<DropReason, number>>;
}

/** Worker -> page. */
export type FromWorker =
  | { kind: 'initAck' }
  | { kind: 'ack'; of: ToWorker['kind'] }
  | { kind: 'stats'; transforms: TransformStats[] }
  | { kind: 'error'; reason: 'not_initialized' | 'bad_message' | 'wasm_failed'; detail: string };
