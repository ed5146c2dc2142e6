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
//! race (this is what MLS does with its delivery service).
//!
//! ## Who sends what
//!
//! - **Committer**: the member with the lowest join sequence; everyone computes the same one
//!   from the log. When it leaves, the next one takes over with that very leave.
//! - **Join** (event `s`): every member ratchets `E_s = HKDF-Expand(E_prev, "hush ratchet", 32)`;
//!   the committer seals `E_s` to the newcomer alone (one envelope). The newcomer cannot reach
//!   `E_prev`.
//! - **Leave, removal, rekey** (event `s`): the committer draws a fresh random `E_s` and seals it
//!   to each remaining member: N-1 envelopes. The leaver's KIDs are retired at once by everyone.
//! - **Acceptance**: a member accepts an envelope only if it is addressed to it, comes from the
//!   committer of the event it answers (as the member's own log says), is for the epoch that
//!   member waits for (the next event that needs one), and authenticates in HPKE Auth mode under
//!   the committer's identity key with room, epoch, sender, recipient and reason bound. Anything
//!   else is refused with an [`crate::EnvelopeError`]: `Misaddressed`, `NotCommitter`, `Stale`,
//!   `Replayed`, `UnexpectedEpoch`, `Forged`. Envelopes for events not seen yet are buffered
//!   (bounded) and checked when the event arrives.
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
//! ## Safety code
//!
//! See [`crate::safety`]: room id, sorted (participant, identity key), and a confirmation value
//! from the epoch that the last membership change started; so a rekey keeps the code.
//!
//! ## What the relay can still do
//!
//! Drop, delay or reorder anything (availability, not confidentiality); refuse to sequence
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
