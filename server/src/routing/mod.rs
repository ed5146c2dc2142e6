//! The routing core: rooms, members, grants, publications, subscriptions and the forwarding
//! table, with no I/O.
//!
//! [`Relay`] is a state machine in the sans-IO style (str0m, quinn-proto): the adapters call
//! [`Relay::connect`], [`Relay::handle_text`], [`Relay::disconnected`],
//! [`Relay::request_keyframe`] and [`Relay::handle_timeout`] with the time, then carry out every
//! [`Output`] from [`Relay::poll_output`]: send a message, close a connection, hand SDP to the
//! media session, start or stop forwarding a track to a subscriber, ask a publisher for a
//! keyframe, write an audit record. The app backend's commands ([`AdminCommand`]) are decided
//! here too, by [`Relay::admin`].
//!
//! # Rules it enforces
//!
//! - The first message is `join` with a valid token ([`crate::token`]); anything else, or
//!   nothing within [`RelayConfig::join_timeout`], closes the connection.
//! - With a token store ([`RelayConfig::token_store`]) a join whose token passed every check
//!   waits for the store to mark its `jti` used ([`Output::ClaimToken`],
//!   [`Relay::token_claimed`]): an id used before, or a store that cannot answer, refuses it.
//! - A room is created by its first join (or by [`Relay::configure_room`]) and forgotten after
//!   it stayed empty for its timeout. It holds at most the smaller of the server's cap and its
//!   own limit. A locked room refuses newcomers; a closed room refuses everyone until forgotten.
//! - Each join gets the next sender index of the room (never reused in the room's life) and a
//!   `join_seq`; each join and leave advances the room's membership sequence number, which every
//!   membership event carries, so that all members see one order.
//! - A participant acts only in its token's room, only with its grants: `publish` and `sources`
//!   to publish, `subscribe` to receive, `moderator` for moderator commands.
//! - Members with `subscribe` receive every track of the others unless they `unsubscribe`.
//! - `e2ee` envelopes go only to a named member of the sender's room, marked with the sender's
//!   id by the relay; payloads are never read.
//! - Keyframe requests come only from members with `subscribe` that receive the track, and
//!   reach a publisher at most once per [`RelayConfig::keyframe_interval`] per track; requests
//!   in between are merged into one at the end of the interval, except that those within
//!   [`RelayConfig::keyframe_grace`] of one sent are answered by it, and a subscriber's first
//!   request for a track is sent at once (once per subscription).
//! - Any member may ask for a rekey: the room places a `rekey` point (the next membership
//!   sequence number) for every member, at most once per [`RelayConfig::rekey_interval`];
//!   requests in between merge into one placed at the end of the interval, never refused.
//! - Each room creation gets a fresh [`hush_proto::RoomInstance`] (from the key set with
//!   [`Relay::set_room_instance_key`]), sent in `joined`.
//! - Each connection has a message token bucket; a flood is dropped, then closed.
//! - Key-exchange messages have their own bucket per connection, sized for a committer's
//!   fan-out, and one per (sender, recipient) pair ([`RelayConfig::pair_key_message_rate`]),
//!   so no member can fill another's signaling queue and have it disconnected ([`share`]).
//! - `e2ee_stats` reports (client-reported E2EE health, for the metrics) count at most once per
//!   [`RelayConfig::e2ee_stats_interval`] per connection, plus one marked `last`; the rest are
//!   dropped silently and counted. Reasons outside the fixed list become `other`, counts are
//!   clamped, and no participant id goes along.
//! - A participant that joins again replaces its old connection (a leave, then a join).
//! - A room is recorded only by its recorder (the identity the app backend set), started and
//!   stopped by a member with the `record` grant or the backend; the recorder is a member with
//!   `role: recorder` on a connection the adapter writes to disk ([`recording`]).

mod admin;
mod admissions;
mod config;
mod dispatch;
mod gate;
mod moderation;
mod outbox;
mod output;
pub(crate) mod rate;
mod recording;
mod relay;
mod removals;
mod room;
mod share;

#[cfg(test)]
mod tests;

pub use admin::{AdminCommand, AdminResult, RoomState};
pub use config::{RateLimit, RelayConfig, RoomSettings};
pub use output::{
    Audit, ConnId, E2eeHealth, MediaSignal, ModerationAction, Output, RecordingAction, TokenClaim,
};
pub use recording::RecorderIdentity;
pub use relay::Relay;
