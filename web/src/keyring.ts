/**
 * The Worker's frame keys: the one place media keys live. The transforms (worker.ts) read it;
 * key sources write it: explicit keys from the page (`setSendKey`/`addRecvKey`) or the hush-keys
 * session running in this Worker (worker-keys.ts). Nothing here ever goes back to the page.
 */

/** Stream contexts, as in hush-keys' KID layout: one SFrame counter per local stream. */
export const Context = { microphone: 0, camera: 1, screen: 2, screenAudio: 3 } as const;

/** A local stream's current key. */
export interface SendKey {
  readonly kid: bigint;
  readonly key: Uint8Array;
}

/** What the transforms tell key sources, and key sources tell the transforms. */
export interface KeyRingListener {
  /** A send key was set (or replaced) for `context`; `null` when sending must stop. */
  sendKeyChanged?(context: number, key: SendKey | null): void;
  /** A receive key was added. */
  recvKeyAdded?(kid: bigint, key: Uint8Array): void;
  /** A receive key was removed. */
  recvKeyRemoved?(kid: bigint): void;
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
  private readonly recv = new Map<bigint, Uint8Array>();
  private readonly listeners = new Set<KeyRingListener>();

  /** Registers a listener; returns a function that removes it. */
  listen(listener: KeyRingListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The current key for a local stream, if any. */
  sendKey(context: number): SendKey | undefined {
    return this.send.get(context);
  }

  /** Sets the key a local stream encrypts with from its next frame. */
  setSend(context: number, kid: bigint, key: Uint8Array): void {
    const k = { kid, key };
    this.send.set(context, k);
    for (const l of this.listeners) l.sendKeyChanged?.(context, k);
  }

  /** Stops a local stream from sending (frames are dropped until a new key is set). */
  stopSend(context: number): void {
    this.send.delete(context);
    for (const l of this.listeners) l.sendKeyChanged?.(context, null);
  }

  /** Every receive key, for a receive transform that starts now. */
  recvKeys(): IterableIterator<[bigint, Uint8Array]> {
    return this.recv.entries();
  }

  /** Adds a receive key (one key per KID: a second add replaces the first). */
  addRecv(kid: bigint, key: Uint8Array): void {
    this.recv.set(kid, key);
    for (const l of this.listeners) l.recvKeyAdded?.(kid, key);
  }

  /** Removes a receive key. */
  removeRecv(kid: bigint): void {
    if (!this.recv.delete(kid)) return;
    for (const l of this.listeners) l.recvKeyRemoved?.(kid);
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

/** The Worker's one key ring. */
export const keyRing = new KeyRing();
