/**
 * The Worker's frame keys: the one place media keys live. The transforms (worker.ts) read it;
 * key sources write it: explicit keys from the page (`setSendKey`/`addRecvKey`) or the hush-keys
 * session running in this Worker (worker-keys.ts). Nothing here ever goes back to the page.
 *
 * The ring owns the key bytes it is given: a key it replaces or removes is zeroed once every
 * listener has been told (the frame layer and WebCrypto hold copies of their own), so an old
 * epoch's key does not linger in the Worker's heap until the garbage collector happens by.
 * A key source must hand over bytes nobody else keeps (the wasm session's outputs and the
 * page's structured-cloned messages are such copies).
 */

/** Stream contexts, as in hush-keys' KID layout: one SFrame counter per local stream. */
export const Context = { microphone: 0, camera: 1, screen: 2, screenAudio: 3 } as const;

/** A local stream's current key. */
export interface SendKey {
  readonly kid: bigint;
  readonly key: Uint8Array;
}

/**
 * A receive key and the participant whose frames it opens: bound by the key exchange (the
 * member with the KID's sender index) or by the page (`addRecvKey`'s `participant`). No owner:
 * a key only transforms attached without a participant use (the legacy path, receivers.ts).
 */
export interface RecvKey {
  readonly key: Uint8Array;
  readonly owner: string | undefined;
}

/** What the transforms tell key sources, and key sources tell the transforms. */
export interface KeyRingListener {
  /** A send key was set (or replaced) for `context`; `null` when sending must stop. */
  sendKeyChanged?(context: number, key: SendKey | null): void;
  /** A receive key was added (a KID's key or owner changed: removed, then added). */
  recvKeyAdded?(kid: bigint, key: Uint8Array, owner: string | undefined): void;
  /** A receive key was removed. */
  recvKeyRemoved?(kid: bigint, owner: string | undefined): void;
  /** A local send transform for `context` started (its first frame is waiting for a key). */
  streamStarted?(context: number): void;
  /** A local send transform for `context` stopped. */
  streamStopped?(context: number): void;
  /** A local stream's key is past half its usage limit: ask for a new epoch. */
  usageLimitNear?(context: number): void;
}

/** Send keys per stream context and receive keys per KID, with change notifications. */
export class KeyRing {
  private readonly send = new Map<number, SendKey>();
  private readonly recv = new Map<bigint, RecvKey>();
  private readonly listeners = new Set<KeyRingListener>();
  private preJoin: ((kid: bigint) => string | undefined) | null = null;

  /** Registers a listener; returns a function that removes it. */
  listen(listener: KeyRingListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The current key for a local stream, if any. */
  sendKey(context: number): SendKey | undefined {
    return this.send.get(context);
  }

  /** The KIDs local streams send under now. */
  sendKids(): bigint[] {
    return [...this.send.values()].map((k) => k.kid);
  }

  /** Sets the key a local stream encrypts with from its next frame (the old one is zeroed). */
  setSend(context: number, kid: bigint, key: Uint8Array): void {
    const old = this.send.get(context);
    const k = { kid, key };
    this.send.set(context, k);
    for (const l of this.listeners) l.sendKeyChanged?.(context, k);
    if (old && old.key !== key) wipe(old.key);
  }

  /** Stops a local stream from sending (frames are dropped until a new key is set). */
  stopSend(context: number): void {
    const old = this.send.get(context);
    this.send.delete(context);
    for (const l of this.listeners) l.sendKeyChanged?.(context, null);
    if (old) wipe(old.key);
  }

  /** Every receive key, for a receive transform that starts now. */
  recvKeys(): IterableIterator<[bigint, RecvKey]> {
    return this.recv.entries();
  }

  /** The receive key of `kid`, if any. */
  recvKey(kid: bigint): RecvKey | undefined {
    return this.recv.get(kid);
  }

  /** Whether `owner` has any receive key. */
  hasRecvKeysOf(owner: string): boolean {
    for (const k of this.recv.values()) if (k.owner === owner) return true;
    return false;
  }

  /**
   * Adds the receive key of `kid`, bound to `owner` (one key per KID: a second add replaces the
   * first). Adding the key a KID already has, for the same owner, changes nothing: the replay
   * window of that KID goes on.
   */
  addRecv(kid: bigint, key: Uint8Array, owner?: string): void {
    const had = this.recv.get(kid);
    if (had && had.owner === owner && sameBytes(had.key, key)) {
      if (had.key !== key) wipe(key); // a second copy of a key held already
      return;
    }
    if (had) this.removeRecv(kid);
    this.recv.set(kid, { key, owner });
    for (const l of this.listeners) l.recvKeyAdded?.(kid, key, owner);
  }

  /** Removes a receive key (and zeroes it). */
  removeRecv(kid: bigint): void {
    const had = this.recv.get(kid);
    if (!had) return;
    this.recv.delete(kid);
    for (const l of this.listeners) l.recvKeyRemoved?.(kid, had.owner);
    wipe(had.key);
  }

  /**
   * Set by the key exchange (worker-keys.ts; `null` when none runs): for a KID no key opens,
   * the member that sealed the frame before this member joined, if it is such a frame.
   */
  setPreJoinCheck(check: ((kid: bigint) => string | undefined) | null): void {
    this.preJoin = check;
  }

  /** The member that sealed a frame under `kid` before this member joined, if it is one. */
  preJoinSender(kid: bigint): string | undefined {
    return this.preJoin?.(kid);
  }

  /** Called by a send transform when it starts. */
  streamStarted(context: number): void {
    for (const l of this.listeners) l.streamStarted?.(context);
  }

  /** Called by a send transform when it ends. */
  streamStopped(context: number): void {
    for (const l of this.listeners) l.streamStopped?.(context);
  }

  /** Called by a send transform when its encryptor asks for rotation. */
  usageLimitNear(context: number): void {
    for (const l of this.listeners) l.usageLimitNear?.(context);
  }
}

/** Zeroes key bytes the ring no longer holds. */
function wipe(key: Uint8Array): void {
  key.fill(0);
}

/** Whether two keys are equal (constant time in their length). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** The Worker's one key ring. */
export const keyRing = new KeyRing();
