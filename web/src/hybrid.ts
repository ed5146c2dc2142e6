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

/**
 * Frames of at least this many bytes go through WebCrypto; smaller ones stay in wasm.
 *
 * Measured with the bench page (`node tests/browser/bench.mjs`: Chromium 156 headless, in a
 * Worker, seal + open per frame through TransformStreams, frames/s, best of 3 rounds, on this
 * project's shared 2-core machine, so +-30% noise between runs):
 *
 *   size     (a) wasm   (b) WebCrypto awaited   (h) planned in wasm + WebCrypto
 *   100 B      34370          20442                    21055
 *   1 KB       23607          27278                    18285
 *   2 KB       11655          10267                     9960   (another run)
 *   4 KB       11117          11926                    19455   (another run)
 *   16 KB       3263          12188                     9742
 *   100 KB       551           3515                     2865
 *
 * The WebCrypto path overtakes wasm between 2 KB and 4 KB here: 2048 keeps Opus packets and
 * small video deltas in wasm, where the async hop costs more than the AES it saves.
 */
export const HOST_AEAD_MIN_BYTES = 2048;

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
    if (have && have.base === base) return have.ready ?? have.key;
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

/** Outcome of one frame: the new bytes, or the reason it is dropped. */
export type FrameResult = Uint8Array | { drop: DropReason };

/** Seals one stream's frames, choosing wasm or WebCrypto per frame. */
export class HybridSealer {
  /** Frames sealed by WebCrypto. */
  host = 0;

  constructor(
    readonly sender: Sender,
    private readonly keys: HostKeys | null,
    private readonly threshold = HOST_AEAD_MIN_BYTES,
  ) {}

  /**
   * Seals `data` under the sender's current key, whose base key is `base` (selects the
   * WebCrypto key). The counter is reserved now, even when sealing finishes later.
   */
  seal(layout: LayoutCode, data: Uint8Array, base: Uint8Array): FrameResult | Promise<FrameResult> {
    if (!this.keys || data.byteLength < this.threshold) {
      try { return this.sender.encrypt(layout, data); } catch { return { drop: 'encrypt_failed' }; }
    }
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
    return sealed.then(
      (ct): FrameResult => {
        try {
          let out = concat(head, ct);
          if (job.escapes) out = this.sender.finishFrame(job, out);
          else this.sender.finish(job);
          return out;
        } catch { return { drop: 'encrypt_failed' }; } finally { job.free(); }
      },
      (): FrameResult => { job.free(); return { drop: 'encrypt_failed' }; },
    );
  }
}

/** Opens one stream's frames, choosing wasm or WebCrypto per frame. */
export class HybridOpener {
  /** Frames opened by WebCrypto. */
  host = 0;

  constructor(
    readonly receiver: Receiver,
    private readonly keys: HostKeys | null,
    /** The base key of a KID, for the WebCrypto key (the same key the receiver holds). */
    private readonly baseKey: (kid: bigint) => Uint8Array | undefined,
    private readonly threshold = HOST_AEAD_MIN_BYTES,
  ) {}

  private reason(): DropReason {
    return (this.receiver.lastError() ?? 'auth_failed') as DropReason;
  }

  /** Authenticates and decrypts `data`, or says why it is dropped. */
  open(layout: LayoutCode, data: Uint8Array): FrameResult | Promise<FrameResult> {
    if (!this.keys || data.byteLength < this.threshold) {
      const out = this.receiver.decrypt(layout, data);
      return out ?? { drop: this.reason() };
    }
    const job = this.receiver.planOpen(layout, data);
    if (!job) return { drop: this.reason() };
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
        try { return this.receiver.commit(job) ? concat(head, pt) : { drop: this.reason() }; }
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
