/**
 * The hybrid AEAD of the frame path (DESIGN.md section 2, "AEAD as a seam"): small frames are
 * sealed and opened in wasm, synchronously; large ones are planned in wasm (counter, header,
 * nonce, AAD, replay check) and sealed or opened with WebCrypto AES-GCM (hardware AES), then
 * committed in wasm. Frames leave in the order they came in, whichever path they took.
 *
 * Used by the Worker's transforms (worker.ts) and by the bench page (web/bench/).
 */
import { aeadKey, type Receiver, type Sender } from '../wasm/hush_wasm.js';
import type { DropReason, LayoutCode } from './protocol.js';
import { sameBytes } from './keyring.js';

/**
 * Frames of at least this many bytes go through WebCrypto; smaller ones stay in wasm.
 *
 * Measured with the bench page (`node tests/browser/bench.mjs`: Chromium 156 headless, in a
 * Worker, seal + open per frame through TransformStreams, frames/s, best of 3 rounds in
 * alternating order, on this project's shared 2-core machine at load 1.7-2.7; three runs,
 * each cell the lowest and highest of the three):
 *
 *   size     (a) wasm       (b) WebCrypto awaited   (h) hybrid, all on WebCrypto
 *   100 B    50251-54990      34983-40601             30618-36717
 *   512 B    38941-39526      34118-35348             32637-34746
 *   640 B    35149-36670      33602-34977             33704-35063
 *   768 B    29490-33670      33400-35411             32916-35112
 *   1 KB     28361-29806      31939-34200             33025-33647
 *   2 KB     19436-20080      30488-31546             30120-31949
 *   16 KB     3563-3721       11287-12739             10881-12346
 *   100 KB     633-640         3481-3933               3597-3697
 *
 * Within each run wasm beats the WebCrypto path up to 640 B and loses from 768 B on, where
 * the async hop starts to cost less than the AES it saves. (With the whole module at
 * opt-level z, before Cargo.toml's `profile.wasm.package` overrides, wasm ran at 1/2 to 1/3 of
 * these figures from 512 B up and lost to WebCrypto from 256 B on.)
 */
export const HOST_AEAD_MIN_BYTES = 768;

/** Frames in flight through WebCrypto per transform before the transform waits. */
export const MAX_IN_FLIGHT = 16;

/** Whether suite `suite` may run on WebCrypto: the AES-GCM suites only (4, 5). */
export function hostSuite(suite: number): boolean {
  return (suite === 4 || suite === 5) && typeof crypto !== 'undefined' && crypto.subtle !== undefined;
}

/**
 * WebCrypto AES-GCM keys, one per KID, imported once from the derived SFrame key (RFC 9605
 * section 4.4.2) as non-extractable keys. An entry is dropped with its KID, and replaced when
 * the KID's base key changes.
 */
export class HostKeys {
  private readonly keys = new Map<bigint, { base: Uint8Array; key: Promise<CryptoKey>; ready?: CryptoKey }>();

  constructor(private readonly suite: number) {}

  /** The key for `kid` under base key `base`: at once once imported, else a promise. */
  get(kid: bigint, base: Uint8Array): CryptoKey | Promise<CryptoKey> {
    const have = this.keys.get(kid);
    // The same bytes in another object count as the same key: each context holds its own copy
    // of a key set for all of them, and the key ring hands out new objects (zeroing the old).
    if (have && (have.base === base || sameBytes(have.base, base))) {
      have.base = base;
      return have.ready ?? have.key;
    }
    const raw = aeadKey(this.suite, kid, base);
    const key = crypto.subtle.importKey('raw', buf(raw), 'AES-GCM', false, ['encrypt', 'decrypt']);
    raw.fill(0);
    const entry: { base: Uint8Array; key: Promise<CryptoKey>; ready?: CryptoKey } = { base, key };
    key.then((k) => { entry.ready = k; }, () => { if (this.keys.get(kid) === entry) this.keys.delete(kid); });
    this.keys.set(kid, entry);
    return key;
  }

  /** Forgets the key of `kid`. */
  drop(kid: bigint): void {
    this.keys.delete(kid);
  }

  /** Forgets every key. */
  clear(): void {
    this.keys.clear();
  }
}

/** WebCrypto wants views of plain ArrayBuffers; frames and wasm results are exactly that. */
const buf = (u: Uint8Array): Uint8Array<ArrayBuffer> => u as Uint8Array<ArrayBuffer>;

/** `a || b` in one new buffer (whose `.buffer` is exactly the frame). */
function concat(a: Uint8Array, b: ArrayBuffer): Uint8Array {
  const out = new Uint8Array(a.length + b.byteLength);
  out.set(a, 0);
  out.set(new Uint8Array(b), a.length);
  return out;
}

/** Length of the plan buffer of `planHost` / `openHost` (hush-wasm's `IO_LEN`). */
const IO_LEN = 64;
/** Bytes of a frame's head the plans read (hush-frame's `DETACHED_HEAD`). */
const HEAD = 32;
/** AES-GCM tag length of suites 4 and 5. */
const TAG = 16;
/**
 * The plan buffer, shared by every sealer and opener of this thread: filled, planned into and
 * read back synchronously, before anything else can run.
 */
const io = new Uint8Array(IO_LEN);
const ioView = new DataView(io.buffer);

/** Puts `data`'s head into `io`. */
function fillIo(data: Uint8Array): void {
  io.set(data.byteLength > HEAD ? data.subarray(0, HEAD) : data, 0);
}

/**
 * AES-GCM params from the plan in `io`. WebCrypto copies `iv` and `additionalData` when it is
 * called, so views of `io` are enough when the call happens now (`copy` false); when it waits
 * for a key import they must be copies.
 */
function ioParams(copy: boolean): AesGcmParams {
  const aadEnd = 16 + io[2];
  return copy
    ? { name: 'AES-GCM', iv: io.slice(4, 16), additionalData: io.slice(16, aadEnd) }
    : { name: 'AES-GCM', iv: io.subarray(4, 16), additionalData: io.subarray(16, aadEnd) };
}

/** Outcome of one frame: the new bytes, or the reason it is dropped. */
export type FrameResult = Uint8Array | { drop: DropReason };

/** Seals one stream's frames, choosing wasm or WebCrypto per frame. */
export class HybridSealer {
  /** Frames sealed by WebCrypto. */
  host = 0;
  /** Seals waiting for WebCrypto: each still calls into `sender` when it finishes. */
  private pending = 0;
  private retiring = false;

  constructor(
    readonly sender: Sender,
    private readonly keys: HostKeys | null,
    private readonly threshold = HOST_AEAD_MIN_BYTES,
  ) {}

  /**
   * Frees the wasm sender, whose key is zeroed as it drops: now, or when the last seal in
   * flight finishes. Not left to the garbage collector, which may keep a replaced key in the
   * module's memory for the rest of the call. Nothing is sealed with this sealer after.
   */
  retire(): void {
    if (this.retiring) return;
    this.retiring = true;
    if (this.pending === 0) this.sender.free();
  }

  /** A seal in flight finished (after its last call into `sender`). */
  private settle(): void {
    this.pending--;
    if (this.retiring && this.pending === 0) this.sender.free();
  }

  /**
   * Seals `data` under the sender's current key, whose base key is `base` (selects the
   * WebCrypto key). The counter is reserved now, even when sealing finishes later.
   */
  seal(layout: LayoutCode, data: Uint8Array, base: Uint8Array): FrameResult | Promise<FrameResult> {
    // Retired: its sender is (or is about to be) freed.
    if (this.retiring) return { drop: 'encrypt_failed' };
    if (!this.keys || data.byteLength < this.threshold) {
      try { return this.sender.encrypt(layout, data); } catch { return { drop: 'encrypt_failed' }; }
    }
    // Fast path (Opus, VP8, VP9, pure): only the frame's head goes to wasm; WebCrypto reads
    // the plaintext straight from the frame, and the output is assembled once.
    const n = data.byteLength;
    fillIo(data);
    let planned: boolean;
    try { planned = this.sender.planHost(layout, io, n); } catch { return { drop: 'encrypt_failed' }; }
    if (planned) {
      this.host++;
      const prefix = io[0];
      const at = prefix + io[1];
      const out = new Uint8Array(at + n - prefix + TAG);
      out.set(data.subarray(0, prefix), 0);
      out.set(io.subarray(16, at - prefix + 16), prefix);
      const key = this.keys.get(ioView.getBigUint64(56, true), base);
      const plain = buf(data.subarray(prefix));
      const sealed = key instanceof Promise
        ? ((p) => key.then((k) => crypto.subtle.encrypt(p, k, plain)))(ioParams(true))
        : crypto.subtle.encrypt(ioParams(false), key, plain);
      this.pending++;
      return sealed.then(
        (ct): FrameResult => {
          try {
            if (ct.byteLength !== out.length - at) return { drop: 'encrypt_failed' };
            out.set(new Uint8Array(ct), at);
            this.sender.finishHost();
            return out;
          } catch { return { drop: 'encrypt_failed' }; } finally { this.settle(); }
        },
        (): FrameResult => { this.settle(); return { drop: 'encrypt_failed' }; },
      );
    }
    // H.26x and AV1: the plan needs the whole frame.
    let job;
    try { job = this.sender.planSeal(layout, data); } catch { return { drop: 'encrypt_failed' }; }
    this.host++;
    const head = job.head;
    const params = { name: 'AES-GCM', iv: buf(job.nonce), additionalData: buf(job.aad) };
    const plain = buf(data.subarray(job.payloadStart));
    const key = this.keys.get(job.kid, base);
    const sealed = key instanceof Promise
      ? key.then((k) => crypto.subtle.encrypt(params, k, plain))
      : crypto.subtle.encrypt(params, key, plain);
    this.pending++;
    return sealed.then(
      (ct): FrameResult => {
        try {
          let out = concat(head, ct);
          if (job.escapes) out = this.sender.finishFrame(job, out);
          else this.sender.finish(job);
          return out;
        } catch { return { drop: 'encrypt_failed' }; } finally { job.free(); this.settle(); }
      },
      (): FrameResult => { job.free(); this.settle(); return { drop: 'encrypt_failed' }; },
    );
  }
}

/**
 * Frames (as received) an opener keeps to recognise byte-identical copies, at most. On a lossy
 * link a copy can come a second or more after the original (a retransmitted packet completes a
 * frame again): 64 frames is two seconds of 30 fps video.
 */
const RECENT_FRAMES = 64;
/** ... and at most these many bytes of them. */
const RECENT_BYTES = 2 << 20;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Opens one stream's frames, choosing wasm or WebCrypto per frame.
 *
 * **Duplicates.** A frame whose counter was already accepted is dropped. When it is a
 * byte-identical copy of one of the last frames decrypted, the reason is `duplicate` rather
 * than `replayed`: Chromium's video receive pipeline hands the transform the same assembled
 * frame more than once at times (measured: the sender sealed each (KID, CTR) once; the
 * receiver got 2 to 6 byte-identical copies of one early delta frame, same RTP timestamp,
 * within 20 ms, in about 1 call in 5; see tests/browser/run.mjs). A copy changes nothing
 * (the first one was delivered), so it is counted apart and raises no failure event; any
 * other frame under a seen counter stays `replayed`. The list is this opener's own: when
 * several openers share one receiver (one per track of a participant, receivers.ts), a copy of
 * a frame another track decrypted is `replayed`.
 */
export class HybridOpener {
  /** Frames opened by WebCrypto. */
  host = 0;
  /** The last frames decrypted, as received (see "Duplicates"). */
  private readonly recent: Uint8Array[] = [];
  private recentBytes = 0;

  constructor(
    readonly receiver: Receiver,
    private readonly keys: HostKeys | null,
    /** The base key of a KID, for the WebCrypto key (the same key the receiver holds). */
    private readonly baseKey: (kid: bigint) => Uint8Array | undefined,
    private readonly threshold = HOST_AEAD_MIN_BYTES,
    /**
     * For a receiver that holds one sender's keys (receivers.ts): why a frame under a KID it
     * has no key for is dropped (`wrong_sender`, `before_join` or `unknown_kid`).
     */
    private readonly unknownKid?: (kid: bigint) => DropReason,
  ) {}

  /**
   * Why `data` was dropped, after wasm refused it (`fallback` when wasm gives no reason). Read
   * at once after the refusing call: the receiver may be shared with other openers.
   */
  private reason(data: Uint8Array, fallback: DropReason = 'auth_failed'): DropReason {
    const r = (this.receiver.lastError() ?? fallback) as DropReason;
    if (r === 'unknown_kid' && this.unknownKid) {
      const kid = this.receiver.lastUnknownKid();
      return kid !== undefined ? this.unknownKid(kid) : r;
    }
    return r === 'replayed' && this.recent.some((f) => equalBytes(f, data)) ? 'duplicate' : r;
  }

  /** Remembers decrypted frame `data` (as received) and returns `out`. */
  private opened(data: Uint8Array, out: Uint8Array): Uint8Array {
    this.recent.push(data);
    this.recentBytes += data.byteLength;
    while (this.recent.length > RECENT_FRAMES || this.recentBytes > RECENT_BYTES) {
      this.recentBytes -= this.recent.shift()!.byteLength;
    }
    return out;
  }

  /** Authenticates and decrypts `data`, or says why it is dropped. */
  open(layout: LayoutCode, data: Uint8Array): FrameResult | Promise<FrameResult> {
    if (!this.keys || data.byteLength < this.threshold) {
      const out = this.receiver.decrypt(layout, data);
      return out ? this.opened(data, out) : { drop: this.reason(data) };
    }
    // Fast path (Opus, VP8, VP9, pure): only the frame's head and tag go to wasm; WebCrypto
    // reads the ciphertext straight from the frame.
    const n = data.byteLength;
    fillIo(data);
    const slot = this.receiver.openHost(layout, io, n);
    if (slot < 0) return { drop: this.reason(data) };
    if (slot > 0) {
      const kid = ioView.getBigUint64(56, true);
      const base = this.baseKey(kid);
      if (!base) { this.receiver.releaseHost(slot, false); return { drop: 'unknown_kid' }; }
      this.host++;
      const prefix = io[0];
      const sealed = buf(data.subarray(io[1]));
      const key = this.keys.get(kid, base);
      const opened = key instanceof Promise
        ? ((p) => key.then((k) => crypto.subtle.decrypt(p, k, sealed)))(ioParams(true))
        : crypto.subtle.decrypt(ioParams(false), key, sealed);
      return opened.then(
        (pt): FrameResult => {
          if (!this.receiver.commitHost(slot)) return { drop: this.reason(data, 'other') };
          if (prefix === 0) return this.opened(data, new Uint8Array(pt));
          const out = new Uint8Array(prefix + pt.byteLength);
          out.set(data.subarray(0, prefix), 0);
          out.set(new Uint8Array(pt), prefix);
          return this.opened(data, out);
        },
        (): FrameResult => { this.receiver.releaseHost(slot, true); return { drop: 'auth_failed' }; },
      );
    }
    // H.26x and AV1: the plan needs the whole frame.
    const job = this.receiver.planOpen(layout, data);
    if (!job) return { drop: this.reason(data) };
    const kid = job.kid;
    const base = this.baseKey(kid);
    if (!base) { job.free(); return { drop: 'unknown_kid' }; }
    this.host++;
    const head = job.head;
    const sealed = buf(job.escapes ? job.sealed : data.subarray(job.sealedStart, job.sealedEnd));
    const params = { name: 'AES-GCM', iv: buf(job.nonce), additionalData: buf(job.aad) };
    const key = this.keys.get(kid, base);
    const opened = key instanceof Promise
      ? key.then((k) => crypto.subtle.decrypt(params, k, sealed))
      : crypto.subtle.decrypt(params, key, sealed);
    return opened.then(
      (pt): FrameResult => {
        try { return this.receiver.commit(job) ? this.opened(data, concat(head, pt)) : { drop: this.reason(data) }; }
        catch { return { drop: 'other' }; } finally { job.free(); }
      },
      (): FrameResult => { job.free(); this.receiver.recordAuthFailure(); return { drop: 'auth_failed' }; },
    );
  }
}

/**
 * A TransformStream that runs `step` on each chunk and emits the results in input order,
 * with up to `limit` asynchronous steps in flight. `step` returns the chunk to emit, `null`
 * to drop it, or a promise of either.
 */
export function orderedTransform<T>(
  step: (chunk: T) => T | null | Promise<T | null>,
  limit = MAX_IN_FLIGHT,
): TransformStream<T, T> {
  const queue: { value: T | null; done: boolean }[] = [];
  let controller: TransformStreamDefaultController<T> | null = null;
  let wake: (() => void) | null = null;
  const flush = (): void => {
    while (queue.length && queue[0].done) {
      const { value } = queue.shift()!;
      if (value !== null && controller) {
        try { controller.enqueue(value); } catch { /* stream closed: nothing to deliver to */ }
      }
    }
    if (wake && queue.length < limit) { const w = wake; wake = null; w(); }
  };
  const drained = (): Promise<void> => (queue.length === 0 ? Promise.resolve() : new Promise((r) => {
    const check = (): void => { if (queue.length === 0) r(); else wake = check; };
    wake = check;
  }));
  return new TransformStream<T, T>({
    start(c) { controller = c; },
    transform(chunk) {
      let r: T | null | Promise<T | null>;
      try { r = step(chunk); } catch { r = null; }
      if (!(r instanceof Promise)) {
        if (queue.length === 0) { if (r !== null) controller!.enqueue(r); return; }
        queue.push({ value: r, done: true });
        return;
      }
      const entry = { value: null as T | null, done: false };
      queue.push(entry);
      r.then((v) => { entry.value = v; entry.done = true; flush(); }, () => { entry.done = true; flush(); });
      if (queue.length >= limit) return new Promise<void>((res) => { wake = res; });
      return;
    },
    flush: drained,
  });
}
