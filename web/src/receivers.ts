/**
 * The Worker's frame decryptors (hush-wasm `Receiver`s, hush-frame `Decryptor`s), one per remote
 * participant, and the attribution of frames to senders.
 *
 * Every receive key is bound to the participant whose frames it opens (keyring.ts `RecvKey`):
 * the key exchange knows each key's sender (the member with the KID's sender index, hush-keys
 * `kid.rs`), and an app that installs keys itself names it (`addRecvKey`'s `participant`).
 *
 * A receive transform attached for participant P opens frames with P's `Receiver`, which holds
 * P's keys and no others, and which every transform attached for P shares. So:
 * - **attribution**: a frame the relay puts on P's track under another sender's key does not
 *   open there; it is dropped as `wrong_sender` (rather than `unknown_kid`: the key exists, it
 *   is just not P's), counted per transform and reported like any other drop;
 * - **one replay window per KID for the whole Worker**: a frame of P already accepted on one of
 *   P's tracks is `replayed` on every other, new tracks included: P's `Receiver` lives as long
 *   as P has keys or transforms, not as long as one track.
 *
 * Each transform keeps its own `HybridOpener` (hybrid.ts) around the shared `Receiver`: its own
 * stats, WebCrypto count and list of recent frames, so a byte-identical copy counts as a
 * harmless `duplicate` only on the track that decrypted the original (browsers re-deliver
 * frames within one track, never across tracks).
 *
 * **Unattributed path**: a transform attached without a participant gets a `Receiver` of its own
 * with only the receive keys that have no owner (an app's `addRecvKey` without `participant`),
 * with replay windows of its own. Keys bound to a sender (every key of the key exchange and of
 * `RelaySession`) never open frames there: such a frame is dropped as `wrong_sender`. So a track
 * whose sender is unknown fails closed instead of opening every member's frames.
 */
import { Receiver } from '../wasm/hush_wasm.js';
import { keyRing } from './keyring.js';

/** One participant's decryptor and how many transforms use it now. */
interface Shared {
  receiver: Receiver;
  users: number;
}

/** Installs `key` for `kid` in `r`; a key the frame layer refuses leaves its frames undecryptable. */
function install(r: Receiver, kid: bigint, key: Uint8Array): void {
  try { r.addKey(kid, key); } catch { /* refused key: frames under it fail */ }
}

/** The per-participant decryptors of this Worker. */
export class Receivers {
  private readonly shared = new Map<string, Shared>();

  constructor() {
    keyRing.listen({
      recvKeyAdded: (kid, key, owner) => {
        const s = owner === undefined ? undefined : this.shared.get(owner);
        if (s) install(s.receiver, kid, key);
      },
      recvKeyRemoved: (kid, owner) => {
        if (owner === undefined) return;
        const s = this.shared.get(owner);
        if (!s) return;
        s.receiver.removeKey(kid);
        this.forgetIfUnused(owner, s);
      },
    });
  }

  /**
   * The decryptor of `participant`'s frames for a transform that starts now (created with
   * `participant`'s keys if it has none yet). Hand it back with `release` when the transform
   * ends; never `free` it.
   */
  acquire(participant: string, suite: number): Receiver {
    let s = this.shared.get(participant);
    if (!s) {
      s = { receiver: new Receiver(suite), users: 0 };
      for (const [kid, k] of keyRing.recvKeys()) if (k.owner === participant) install(s.receiver, kid, k.key);
      this.shared.set(participant, s);
    }
    s.users++;
    return s.receiver;
  }

  /** A transform of `participant` ended. */
  release(participant: string): void {
    const s = this.shared.get(participant);
    if (!s) return;
    s.users--;
    this.forgetIfUnused(participant, s);
  }

  /** Frees `participant`'s decryptor once no transform uses it and it holds no key. */
  private forgetIfUnused(participant: string, s: Shared): void {
    if (s.users > 0 || keyRing.hasRecvKeysOf(participant)) return;
    this.shared.delete(participant);
    s.receiver.free();
  }
}

/** The Worker's one set of decryptors. */
export const receivers = new Receivers();

/**
 * A decryptor for a transform attached without a participant (the unattributed path): its own,
 * with the receive keys that have no owner, kept up to date until `stop` is called (then free
 * the receiver).
 */
export function unattributedReceiver(suite: number): { receiver: Receiver; stop: () => void } {
  const receiver = new Receiver(suite);
  for (const [kid, k] of keyRing.recvKeys()) if (k.owner === undefined) install(receiver, kid, k.key);
  const stop = keyRing.listen({
    recvKeyAdded(kid, key, owner) { if (owner === undefined) install(receiver, kid, key); },
    recvKeyRemoved(kid, owner) { if (owner === undefined) receiver.removeKey(kid); },
  });
  return { receiver, stop };
}

/**
 * Why a frame under `kid` that `participant`'s decryptor has no key for is dropped:
 * - `wrong_sender`: the key ring holds a key for `kid` that is not `participant`'s
 *   (`participant` undefined, an unattributed track: the key has an owner);
 * - `before_join`: `participant` sealed it before this member joined, under an epoch this member
 *   never holds (the key exchange says so, for the grace period after the join). Expected for
 *   a newcomer's first frames, so the transform raises no failure event for it;
 * - `unknown_kid` otherwise.
 */
export function unknownKidReason(participant: string | undefined, kid: bigint): 'wrong_sender' | 'before_join' | 'unknown_kid' {
  const k = keyRing.recvKey(kid);
  if (k !== undefined && k.owner !== participant) return 'wrong_sender';
  if (participant !== undefined && keyRing.preJoinSender(kid) === participant) return 'before_join';
  return 'unknown_kid';
}
