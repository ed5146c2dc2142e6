//! # The key protocol, in prose
//!
//! ## Epochs are relay events
//!
//! The relay keeps one ordered log per room: joins, leaves, removals and rekey points, numbered
//! 1, 2, 3, ... Every epoch answers exactly one such event, and **its epoch number is that
//! event's sequence number**. So every member knows, without trusting anyone, which epoch comes
//! next ("the epoch of the next event in the log"), and an envelope that names its epoch also
//! names the event it answers: replaying it for a later event is impossible. (Numbers skip where
//! an event starts no epoch, such as a refused join; KIDs carry the number mod 2^8.)
//!
//! Timer and usage-limit rotations are relay events too ([`crate::Change::Rekey`]): a member
//! asks ([`crate::Output::RequestRekey`]) and the relay puts a rekey point in the log. A
//! rotation that the committer started on its own could cross a join in flight, and members
//! would then ratchet different secrets; putting every epoch change in one order removes that
//! race (this is what MLS does with its delivery service). The point names who asked
//! ([`crate::Change::RekeyRequested`]): the committer's asking makes it a fresh epoch (sealed to
//! every member); anyone else's a ratchet, which needs no envelope, so no member can make the
//! committer fan out envelopes faster than its own timer and membership changes do.
//!
//! ## Who sends what
//!
//! - **Committer**: the member with the lowest join sequence; everyone computes the same one
//!   from the log. When it leaves, the next one takes over with that very leave.
//! - **Join** (event `s`): every member ratchets
//!   `E_s = HKDF-Expand(E_prev, "hush ratchet v3" || be64(s) || roster digest, 32)`, the digest
//!   of the member list after the join ([`crate::roster`]; shared-secret mode keeps
//!   `"hush ratchet v2" || be64(s)`, below); the committer seals `E_s` to the newcomer alone
//!   (one envelope). The newcomer cannot reach `E_prev`, and a member shown another list (a
//!   join it refused, a rekey point in the join's place) lands on another secret.
//! - **Leave, removal, rekey** (event `s`): the committer draws a fresh random `E_s` and seals it
//!   to each remaining member: N-1 envelopes. The leaver's KIDs are retired at once by everyone.
//! - **Acceptance**: a member accepts an envelope only if it is addressed to it, comes from the
//!   committer of the event it answers (as the member's own log says), is for the epoch that
//!   member waits for (the next event that needs one), was sealed for the member list the
//!   member itself has at that epoch (the header's roster digest, [`crate::roster`]), and
//!   authenticates in HPKE Auth mode under the committer's identity key with room, epoch,
//!   sender, recipient, reason and roster bound. Anything else is refused with an
//!   [`crate::EnvelopeError`]: `Misaddressed`, `NotCommitter`, `Stale`, `Replayed`,
//!   `UnexpectedEpoch`, `RosterMismatch`, `Forged`. Envelopes for events not seen yet are
//!   buffered (bounded) and checked when the event arrives. A roster mismatch leaves the member
//!   waiting, so a relay that showed it another member list than the committer's (a member it
//!   refused and the committer admitted, a member left out of its snapshot) gets it to stop
//!   sending at the stall deadline, not to send under a secret that member holds.
//! - **Committer gone mid-change**: a member waiting for an envelope whose committer leaves later
//!   in the log stops waiting (that envelope may never come) and applies the log up to the
//!   leave, which the next committer answers with a fresh epoch for everyone.
//!
//! ## Switching without losing frames
//!
//! A member that installs epoch `s` (ratchet or envelope) installs its receive keys at once and
//! acks to the committer (an HMAC under a key derived from `E_s`, so the ack proves it holds
//! the epoch). When every member has acked, the committer broadcasts a switch notice and every
//! member moves its local streams to `s` ([`crate::KeyUpdate::SetSend`]). A member that hears
//! nothing switches anyway after `switch_timeout` (1.5 s). Receivers keep older epochs for
//! `grace` (10 s) after they switched, then retire them. A member that gets a key from the
//! committer reports [`crate::Event::KeyframeWanted`].
//!
//! ## Failing closed on a stalled epoch
//!
//! After another member's leave or removal (event `s`), a member goes on sending on the epoch
//! before `s`, which the departed member holds, until it installs `E_s` and the switch round
//! ends. A relay that withholds its envelope would keep it there for good. So each departure
//! starts a deadline, `stall_timeout` (2 s), **from when the event arrives** (not when it is
//! applied: a leave queued behind a withheld rekey envelope counts too, since events apply in
//! order). Past it, with no epoch `>= s` installed, the member stops every local stream
//! ([`crate::KeyUpdate::StopSend`]: the frame layer then drops frames as no-key instead of
//! encrypting them; it pauses its encryptor and keeps the counter, because a stall whose
//! departures turn out void, a relay's leave of someone who was never a member, say, resumes
//! the epoch it stopped under the same KID and key) and reports [`crate::Event::KeyAwaited`] `{ epoch: s }`; receive keys are
//! untouched, so it still hears whoever it can. Only departures start a deadline: a join
//! ratchets locally and a rekey excludes nobody (the epoch before it is held by members only).
//!
//! When an epoch `>= s` is installed the member sends again at once, on that newest epoch
//! ([`crate::KeyUpdate::SetSend`], then [`crate::Event::Switched`]), without waiting for the
//! switch round: the others have normally switched already, and it must never resume on an
//! epoch the departed member holds (a rekey epoch from before the leave that comes late is
//! installed for receiving only).
//!
//! The value: 2 s exceeds `switch_timeout` (1.5 s) plus one relay hop for the envelope, so an
//! honest round that ends on the timeout never trips it (a room churning every 400 ms on a
//! network with 10-200 ms delays never stalls: `tests/stall.rs`); and it is far under `grace`
//! (10 s), after which the members who moved on stop reading the old epoch anyway, so a member
//! still on it would be heard by nobody but the one who left. What the departed member can
//! read of this member is bounded by the deadline plus `switch_timeout` after the leave event
//! reached it, where before it was unbounded.
//!
//! ## A committer that never answers
//!
//! A member that waits for the committer's envelope (its join, a leave, a removal, a rekey) for
//! `committer_timeout` (10 s, the grace period) reports [`crate::Event::CommitterStalled`]
//! once for that wait. Nothing else changes: after a leave it keeps failing closed. Members
//! do not ask for a rekey then, since the relay puts the rekey point in the log and the same
//! committer answers it. The handover rule covers a committer that is gone: its connection
//! drops, the relay logs its leave, waiting members stop waiting and the next committer
//! answers that leave with a fresh epoch for everyone. A committer that stays connected but
//! silent, or a relay that withholds its envelopes, cannot be routed around by the members:
//! electing another committer needs agreement that the relay could split (members moving at
//! different times would accept different epochs), and the relay carries every committer's
//! envelopes anyway. That is availability, left to the app: show it, rejoin (a fresh snapshot
//! and envelope) or leave.
//!
//! ## Safety code
//!
//! See [`crate::safety`]: 25 digits over the room id and each member's (participant, identity
//! key, fresh nonce), the nonces committed to by every member before any is revealed, one
//! commit-then-reveal round per membership change (a rekey keeps the code). Until a round
//! completes the code is pending ([`crate::Event::SafetyCodePending`]).
//!
//! ## What the relay can still do
//!
//! Drop, delay or reorder anything (availability, not confidentiality: withholding the epoch
//! after a leave makes the member stop sending within `stall_timeout`, above); delay the leave
//! event itself (the member cannot know of a departure it was not told about; the safety
//! code still lists the departed member meanwhile); refuse to sequence
//! rekeys (the frame layer then refuses to encrypt past its usage limit: no nonce reuse);
//! add a ghost member or swap identity keys, which the safety code shows and attestations
//! forbid. Acks and switch notices are authenticated with the epoch secret, so any member of
//! the epoch could compute one in another's name; with [`crate::Input::MessageFrom`] (the
//! relay's `from`) a member's message claiming another member's sender index is refused, so
//! only the relay could still forge them (availability only).
//!
//! ## Shared-secret mode
//!
//! `E_0 = HKDF-Extract("hush shared secret" || u16be(len(room)) || room || room_instance,
//! secret)` (`room_instance`, from the relay's `joined`, differs for each life of a room, so a
//! room recreated after its empty timeout never repeats keys), then every relay event ratchets
//! (`E_s = ratchet^s(E_0)`), with the same ack and switch round and no envelopes. It needs no
//! identity exchange but anyone who ever held the secret can compute every epoch, past and
//! future: it keeps the relay out, nothing more.
