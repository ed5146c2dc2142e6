//! Limits and timers of the routing core.

use std::time::Duration;

/// A token-bucket rate: up to `burst` at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// The bucket's size.
    pub burst: u32,
    /// Refill per second.
    pub per_second: u32,
}

/// Server-wide limits and timers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Rooms at once (closed rooms that are still remembered count).
    pub max_rooms: usize,
    /// Participants per room: the server cap. A room's own limit can only be lower.
    pub max_participants_per_room: u32,
    /// Sender indexes a room may hand out in its life; once used up it refuses joins with
    /// `room_full`. Must fit the key layer's KID packing.
    pub max_sender_indexes: u32,
    /// Admissions of one participant id to one room a minute, all at once or spread (one comes
    /// back every minute / this): a participant rejoining in a loop is refused (`rate_limited`)
    /// past it (see `admissions`).
    pub admissions_per_minute: u32,
    /// How long an empty room lives before it is forgotten (unless set per room).
    pub empty_room_timeout: Duration,
    /// How long a closed room is remembered, refusing joins with `room_closed`.
    pub closed_room_retention: Duration,
    /// How long a connection may wait before sending `join`.
    pub join_timeout: Duration,
    /// Messages per connection, key-exchange messages aside (see
    /// [`RelayConfig::key_message_rate`]).
    pub message_rate: RateLimit,
    /// Messages dropped in a row for the rate limit before the connection is closed.
    pub max_rate_strikes: u32,
    /// The shortest time between two keyframe requests reaching one publisher's track; requests
    /// in between are merged into one sent when the interval is over.
    pub keyframe_interval: Duration,
    /// A keyframe request that arrives within this time after one reached the publisher is
    /// taken as answered by it and dropped: the subscribers that ask right after a new one
    /// joined would otherwise cost the publisher a second keyframe one interval later, and hold
    /// up the next newcomer's first keyframe behind it.
    pub keyframe_grace: Duration,
    /// The shortest time between two rekey points in one room's membership log; `rekey`
    /// requests in between are merged into one placed when the interval is over.
    pub rekey_interval: Duration,
    /// The shortest time between two counted `e2ee_stats` reports of one connection; reports
    /// in between are dropped silently (and counted).
    pub e2ee_stats_interval: Duration,
    /// Whether rooms may be recorded (the adapter has somewhere to write): without it `record`
    /// is refused with `recording_disabled`.
    pub recording: bool,
    /// Whether an adapter keeps used token ids beyond this process (a file that survives a
    /// restart, or Redis shared by several relays): a join whose token passed every check here
    /// then waits for [`Output::ClaimToken`]'s answer ([`super::Relay::token_claimed`]) before
    /// it is admitted. Without it the core's own replay cache is the only check.
    ///
    /// [`Output::ClaimToken`]: super::Output::ClaimToken
    pub token_store: bool,
}

impl RelayConfig {
    /// Key-exchange messages (`e2ee`, `e2ee_broadcast`) per connection: their own bucket, sized
    /// by the room, so that a committer's fan-out is never starved by, nor starves, the rest.
    /// A committer of a full room sends one envelope per other member for a fresh epoch and one
    /// switch notice; on a membership change also one commit and one reveal: up to
    /// `max_participants + 3` at once. The bucket holds four times the room and refills two
    /// rooms' worth per second (a fresh epoch or two per second, which only the committer's own
    /// timer and membership changes cause: other members' rekey requests are ratchets).
    pub fn key_message_rate(&self) -> RateLimit {
        let room = self.max_participants_per_room.max(1);
        RateLimit {
            burst: room.saturating_mul(4),
            per_second: room.saturating_mul(2),
        }
    }

    /// `publish` and `unpublish` per connection. Each is announced to every member and starts
    /// or stops forwarding for every subscriber, through the same bounded queues, so without a
    /// bucket of its own one member toggling a track could fill another's queue (256) inside
    /// the general bucket's burst and have it disconnected. A client publishes at most four
    /// sources at once and toggles one now and then: 16 at once, 2 a second.
    pub fn track_change_rate(&self) -> RateLimit {
        RateLimit {
            burst: 16,
            per_second: 2,
        }
    }

    /// Key-exchange messages from one member to one other (each recipient of a broadcast
    /// counts): a quarter of a recipient's signaling queue (256 messages) at once, 16 a second.
    /// A committer sends each member about four per membership change (an envelope, a switch
    /// notice, a commit, a reveal), so this is sixteen changes at once and four a second.
    pub fn pair_key_message_rate(&self) -> RateLimit {
        RateLimit {
            burst: 64,
            per_second: 16,
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_rooms: 10_000,
            max_participants_per_room: 100,
            max_sender_indexes: 1 << 16,
            admissions_per_minute: 10,
            empty_room_timeout: Duration::from_secs(5 * 60),
            closed_room_retention: Duration::from_secs(10 * 60),
            join_timeout: Duration::from_secs(10),
            // A committer of a full room sends one envelope per member at once.
            message_rate: RateLimit {
                burst: 200,
                per_second: 50,
            },
            max_rate_strikes: 100,
            keyframe_interval: Duration::from_millis(500),
            keyframe_grace: Duration::from_millis(150),
            rekey_interval: Duration::from_secs(1),
            e2ee_stats_interval: Duration::from_secs(5),
            recording: false,
            token_store: false,
        }
    }
}

/// Settings of one room, set through the admin API before or while it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomSettings {
    /// The room's participant limit (capped by [`RelayConfig::max_participants_per_room`]).
    pub max_participants: Option<u32>,
    /// How long the room lives empty (instead of [`RelayConfig::empty_room_timeout`]).
    pub empty_timeout: Option<Duration>,
}
