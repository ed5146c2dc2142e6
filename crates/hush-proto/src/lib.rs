//! Hush signaling protocol: the messages between a client and the relay, the access-token
//! claims, and the error codes. Shared by the relay (`hush-relay`) and native clients; the
//! browser client mirrors it in TypeScript. No I/O.
//!
//! # Wire format
//!
//! One JSON object per WebSocket text message (`/v1/rtc`), at most [`MAX_MESSAGE_BYTES`]:
//! `v` is the protocol version ([`PROTOCOL_VERSION`], `1`) and `type` picks the message. Field
//! names are snake_case; opaque bytes are standard base64 with padding; ids are strings (see
//! [`ids`]); times are Unix seconds. Fields a message does not define are ignored; anything
//! incompatible gets a new `v`.
//!
//! ```json
//! {"v":1,"type":"join","token":"eyJhbGciOiJFZERTQSIs...","identity_key":"q83v..."}
//! {"v":1,"type":"joined","you":"p-7f3a","sender_index":4,"join_seq":9,"room":"standup",
//!  "locked":false,"grants":{"publish":true,"subscribe":true,"moderator":false,"record":false},
//!  "participants":[],"tracks":[]}
//! ```
//!
//! [`ClientMessage::decode`] and [`ServerMessage::decode`] refuse with a precise
//! [`DecodeError`] (and so an [`ErrorCode`]): too large, not JSON, missing `v` or `type`, unknown
//! version, unknown type, missing or mistyped fields, fields over their limits ([`limits`]).
//!
//! # Client to relay
//!
//! | `type` | fields | needs | what the relay does |
//! |---|---|---|---|
//! | `join` | `token`, `identity_key`, `room`?, `attestation`?, `offers_first`? | must be first | verifies the token, answers `joined`, tells the others `participant_joined`; `offers_first: false` (publishes nothing) gets the relay's offer at once |
//! | `leave` | | | `participant_left` to the others, closes |
//! | `offer` / `answer` | `sdp` | | to the client's media session |
//! | `candidate` | `candidate`, `sdp_mid`?, `sdp_m_line_index`?, `username_fragment`? | | to the client's media session |
//! | `publish` | `source`, `mid`? | `publish`, `sources` | `track_published` to everyone; subscribers start receiving |
//! | `unpublish` | `source` | | `track_unpublished` to everyone |
//! | `subscribe` / `unsubscribe` | `track` | `subscribe` (to subscribe) | starts or stops forwarding that track to you |
//! | `e2ee` | `to`, `payload` | | `e2ee` with `from` to that member of your room only |
//! | `e2ee_broadcast` | `payload` | | `e2ee` with `from` to every other member of your room |
//! | `keyframe_request` | `track` | `subscribe`, subscribed to `track` | `keyframe_request` to the publisher, rate limited per track |
//! | `video_size` | `track`, `width`, `height` (device pixels, at most 16384) | `subscribe`, subscribed to `track` | none; the relay sends no simulcast layer of `track` much larger than that |
//! | `rekey` | `reason`? (`timer`, `usage_limit`) | | `rekey` with the next membership `seq` to every member (you too); at most one per room per second, requests in between merge into one |
//! | `force_disconnect` | `participant` | `moderator` | removes it (`removed`); a removal is a leave; its next join needs a token issued after the removal |
//! | `force_unpublish` | `participant`, `source` | `moderator` | unpublishes its track |
//! | `lock_room` | `locked` | `moderator` | `room_locked` to everyone |
//! | `close_room` | | `moderator` | removes everyone (`room_closed`) |
//! | `record` | `action` (`start`, `stop`) | `record` | the room's recorder joins (or leaves) the key exchange, `recording` to everyone; the relay writes the still-encrypted media to disk |
//! | `ping` | `seq` | | `pong` with the same `seq` |
//! | `e2ee_stats` | `dropped` {reason: count}, `decrypted`, `epoch`?, `last`? | | adds the counts (deltas since the previous report, each clamped) to the `hush_e2ee_*` metrics; at most one per 5 s per connection (plus one `last`), extra ones dropped silently and counted |
//!
//! Every message but `join` needs a joined connection.
//!
//! # Relay to client
//!
//! | `type` | fields |
//! |---|---|
//! | `joined` | `you`, `sender_index`, `join_seq`, `room`, `room_instance`, `locked`, `grants`, `participants` (oldest first), `tracks` |
//! | `participant_joined` | `seq`, `participant` {`id`, `sender_index`, `join_seq`, `identity_key`, `attestation`?, `grants`, `role`? (`recorder`)} |
//! | `participant_left` | `seq`, `participant`, `sender_index`, `reason` (`left`, `disconnected`, `removed`, `replaced`) |
//! | `rekey` | `seq`, `by` (who asked) |
//! | `track_published` | `track`, `participant`, `sender_index`, `source` |
//! | `track_unpublished` | `track`, `participant`, `source` |
//! | `offer` / `answer` / `candidate` | as from the client |
//! | `e2ee` | `from`, `payload` |
//! | `keyframe_request` | `track` (one of yours) |
//! | `room_locked` | `locked` |
//! | `recording` | `active`, `by`?, `reason`? (`stopped`, `disk_full`, `write_error`, `size_limit`, `room_empty`, `shutdown`, `removed`) |
//! | `pong` | `seq` |
//! | `error` | `code`, `message`, `fatal` |
//!
//! Membership events (`joined`, `participant_joined`, `participant_left`, `rekey`) carry the
//! room's membership sequence number, which grows by one per join, leave or rekey point: the key
//! layer orders epoch changes by it (a rekey is a fresh epoch, like a leave, but keeps the
//! safety code). Sender indexes and track ids are never reused within a room.
//!
//! # Error codes
//!
//! Token codes are always fatal. The others are fatal where the table says so; otherwise only
//! the offending message is dropped.
//!
//! | code | meaning |
//! |---|---|
//! | `token_too_large` | token over [`limits::MAX_TOKEN_BYTES`] |
//! | `token_malformed` | not a compact JWS with a readable header and claims |
//! | `token_unsupported_algorithm` | `alg` is not `HS256` or `EdDSA` (`none` included) |
//! | `token_unknown_key` | `kid` names no configured key, or is missing while several keys are set |
//! | `token_algorithm_mismatch` | `alg` is not the algorithm of the key that `kid` names |
//! | `token_bad_signature` | the signature does not verify |
//! | `token_missing_claim` | a required claim is missing (the message names it) |
//! | `token_invalid_claim` | a claim has the wrong type or value (the message names it) |
//! | `token_expired` | `exp` has passed |
//! | `token_not_yet_valid` | `nbf` is in the future |
//! | `token_issued_in_future` | `iat` is in the future |
//! | `token_lifetime_too_long` | `exp` is further away than the relay's policy allows, or the token's whole life (`exp - iat`) is longer |
//! | `token_wrong_audience` | `aud` does not name this relay |
//! | `token_wrong_room` | the token's `room` is not the room the `join` named |
//! | `token_replayed` | the `jti` was used before: tokens are single use |
//! | `message_too_large` | message over [`MAX_MESSAGE_BYTES`] |
//! | `malformed_message` | not JSON, or a field missing or mistyped |
//! | `unsupported_version` | `v` is not `1` |
//! | `unknown_message_type` | `type` names no message |
//! | `field_too_large` | a field over its limit in [`limits`] |
//! | `not_joined` | the first message was not `join` (fatal) |
//! | `already_joined` | a second `join` |
//! | `join_timeout` | no `join` in time (fatal) |
//! | `rate_limited` | too many messages; fatal when it goes on |
//! | `publish_not_allowed` | no `publish` grant |
//! | `source_not_allowed` | the source is not in the `sources` grant |
//! | `subscribe_not_allowed` | no `subscribe` grant |
//! | `not_subscribed` | you do not receive this track (`keyframe_request`, `video_size`) |
//! | `moderator_required` | no `moderator` grant |
//! | `record_not_allowed` | no `record` grant |
//! | `recorder_not_configured` | the app backend set no recorder identity for the room |
//! | `already_recording` | `record` `start` while the room is being recorded |
//! | `not_recording` | `record` `stop` while it is not |
//! | `recording_disabled` | the relay has no recording directory configured |
//! | `room_empty` | `record` `start` in a room without participants |
//! | `room_full` | the room is at its participant limit (fatal at join) |
//! | `server_full` | the relay is at its room limit (fatal at join) |
//! | `room_locked` | the room is locked (fatal at join) |
//! | `room_closed` | a moderator closed the room (fatal) |
//! | `removed` | a moderator removed you (fatal) |
//! | `replaced` | you joined again on another connection (fatal) |
//! | `unknown_room` | no such room (admin API) |
//! | `unknown_participant` | no such participant in your room |
//! | `unknown_track` | no such track in your room |
//! | `already_published` | you already publish this source |
//! | `not_published` | you publish nothing from this source |
//! | `server_busy` | a relay capacity limit; try later (fatal at join) |
//! | `server_shutting_down` | the relay is draining before it stops: the call goes on until it closes the socket (1001); rejoin |
//! | `internal_error` | a relay fault; no detail is disclosed |
//!
//! # Tokens
//!
//! See [`TokenClaims`] and [`Grants`]; the relay's `token` module verifies them.

pub mod bytes;
pub mod client;
pub mod error;
pub mod ids;
pub mod limits;
pub mod message;
pub mod redact;
pub mod server;
pub mod signal;
pub mod token;

#[cfg(test)]
mod tests;

pub use bytes::OpaqueBytes;
pub use client::{
    ClientMessage, E2eeBroadcast, E2eeDropReason, E2eeStats, E2eeTo, ForceDisconnect,
    ForceUnpublish, Join, LockRoom, MAX_E2EE_STATS_COUNT, MAX_VIDEO_SIZE, Ping, Publish, Record,
    RecordAction, RekeyReason, RekeyRequest, TrackRef, Unpublish, VideoSize,
};
pub use error::ErrorCode;
pub use ids::{
    ID_RULE, IdError, ParticipantId, RoomId, RoomInstance, SenderIndex, Source, TrackId,
};
pub use limits::MAX_MESSAGE_BYTES;
pub use message::{DecodeError, FieldTooLarge, PROTOCOL_VERSION};
pub use redact::Pii;
pub use server::{
    E2eeFrom, ErrorMessage, IceServer, Joined, LeaveReason, MemberRole, ParticipantInfo,
    ParticipantJoined, ParticipantLeft, RecordingEnd, RecordingStatus, RekeyEvent, ServerMessage,
    TrackInfo, TrackUnpublished,
};
pub use signal::{Candidate, Sdp};
pub use token::{AccessToken, Audience, Grants, TokenClaims};
