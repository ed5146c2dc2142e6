//! The relay's routing state machine: connections in, outputs out.

use std::collections::BTreeMap;
use std::time::Instant;

use hmac::{Hmac, KeyInit, Mac};
use hush_proto::{ClientMessage, ErrorCode, LeaveReason, RoomId, RoomInstance, TrackId};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::config::{RelayConfig, RoomSettings};
use super::outbox::{Outbox, Refusal};
use super::output::{Audit, ConnId, Output};
use super::rate::TokenBucket;
use super::removals::Removals;
use super::room::Room;
use super::share::Shares;
use crate::time::Now;
use crate::token::TokenVerifier;

/// The routing core. Feed it connections, messages, disconnections and timeouts with the time;
/// take [`Output`]s from [`Relay::poll_output`] until it returns `None`; call
/// [`Relay::handle_timeout`] at [`Relay::poll_timeout`]. It never blocks, reads no clock and
/// draws no random numbers: the same inputs give the same outputs.
#[derive(Debug)]
pub struct Relay {
    pub(super) config: RelayConfig,
    pub(super) tokens: TokenVerifier,
    pub(super) conns: BTreeMap<ConnId, Conn>,
    pub(super) rooms: BTreeMap<RoomId, Room>,
    next_conn: u64,
    pub(super) out: Outbox,
    /// The key room instances are derived from (see [`Relay::set_room_instance_key`]).
    room_instance_key: Zeroizing<[u8; 32]>,
    /// Rooms created so far: each creation gets a distinct instance.
    rooms_created: u64,
    /// Who was removed from which room, so that a token issued before cannot bring them back.
    pub(super) removals: Removals,
}

/// A connection's state.
#[derive(Debug)]
pub(super) struct Conn {
    opened: Instant,
    bucket: TokenBucket,
    /// Key-exchange messages' own bucket ([`RelayConfig::key_message_rate`]).
    key_bucket: TokenBucket,
    /// `publish` and `unpublish`'s own bucket ([`RelayConfig::track_change_rate`]).
    pub(super) track_bucket: TokenBucket,
    /// Its share of each recipient's queue for key-exchange messages ([`super::share`]).
    pub(super) shares: Shares,
    /// Messages dropped in a row by [`Self::bucket`] and by [`Self::key_bucket`]: each
    /// bucket's own, so that a message the other bucket lets through does not forgive a flood.
    strikes: [u32; 2],
    /// The room it joined, once it has.
    pub(super) room: Option<RoomId>,
    /// `e2ee_stats` bookkeeping.
    pub(super) e2ee_stats: E2eeStatsState,
    /// What its `join` said about the first SDP offer ([`hush_proto::Join::offers_first`]).
    pub(super) offers_first: Option<bool>,
    /// A join whose token passed, waiting for the token store ([`Output::ClaimToken`]).
    pub(super) pending: Option<Box<PendingJoin>>,
}

/// A verified join waiting for the token store's answer.
#[derive(Debug)]
pub(super) struct PendingJoin {
    pub(super) claims: hush_proto::TokenClaims,
    pub(super) identity_key: hush_proto::OpaqueBytes,
    pub(super) attestation: Option<hush_proto::OpaqueBytes>,
    pub(super) offers_first: Option<bool>,
}

impl PendingJoin {
    /// The room and the participant its token names, for the audit trail.
    pub(super) fn who(&self) -> (hush_proto::RoomId, hush_proto::ParticipantId) {
        (self.claims.room.clone(), self.claims.sub.clone())
    }
}

/// A connection's `e2ee_stats` rate limit and last reported epoch.
#[derive(Debug, Default)]
pub(super) struct E2eeStatsState {
    /// When the last counted report arrived.
    pub(super) last_report: Option<Instant>,
    /// The epoch the last report named.
    pub(super) epoch: Option<u64>,
    /// A report marked `last` was counted: nothing more is.
    pub(super) finished: bool,
}

impl Relay {
    /// A relay with no rooms.
    pub fn new(config: RelayConfig, tokens: TokenVerifier) -> Self {
        Self {
            config,
            tokens,
            conns: BTreeMap::new(),
            rooms: BTreeMap::new(),
            next_conn: 0,
            out: Outbox::default(),
            room_instance_key: Zeroizing::new([0; 32]),
            rooms_created: 0,
            removals: Removals::default(),
        }
    }

    /// Sets the secret that room instances ([`hush_proto::RoomInstance`], in `joined`) are
    /// derived from. The adapter must call it once at start with 32 bytes from the OS RNG: the
    /// core draws no random numbers itself, so this key is its only source. Each room creation
    /// gets `HMAC-SHA-256(key, "hush room instance" || creation counter || room id)[..16]`:
    /// distinct for every creation in this process, unpredictable without the key, and
    /// (with a fresh key per start) different across restarts. Without a call the key is all
    /// zeros: instances still differ within one process, but repeat after a restart.
    pub fn set_room_instance_key(&mut self, key: [u8; 32]) {
        self.room_instance_key = Zeroizing::new(key);
    }

    /// A new room named `id`, with the next instance.
    /// Creates `room_id` (empty, default settings) unless the relay holds it; refused
    /// (`server_full`) past [`RelayConfig::max_rooms`].
    pub(super) fn ensure_room(&mut self, room_id: &RoomId, now: Instant) -> Result<(), Refusal> {
        if self.rooms.contains_key(room_id) {
            return Ok(());
        }
        if self.rooms.len() >= self.config.max_rooms {
            return Err(Refusal::new(
                ErrorCode::ServerFull,
                "the relay has no room for another room",
            ));
        }
        let room = self.new_room(room_id.clone(), RoomSettings::default(), now);
        self.rooms.insert(room_id.clone(), room);
        Ok(())
    }

    pub(super) fn new_room(&mut self, id: RoomId, settings: RoomSettings, now: Instant) -> Room {
        self.rooms_created += 1;
        let instance = match Hmac::<Sha256>::new_from_slice(self.room_instance_key.as_slice()) {
            Ok(mut mac) => {
                mac.update(b"hush room instance");
                mac.update(&self.rooms_created.to_be_bytes());
                mac.update(id.as_str().as_bytes());
                let tag = mac.finalize().into_bytes();
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&tag[..16]);
                RoomInstance(bytes)
            }
            // HMAC accepts keys of any length: unreachable. The counter alone still keeps
            // instances distinct in this process.
            Err(_) => {
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&self.rooms_created.to_be_bytes());
                RoomInstance(bytes)
            }
        };
        Room::new(id, instance, settings, now)
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// The token verifier, to add or revoke keys while running.
    pub fn tokens_mut(&mut self) -> &mut TokenVerifier {
        &mut self.tokens
    }

    /// A connection id never used before (for a connection, or a recorder's writer).
    pub(super) fn fresh_conn(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    /// A new connection. It must send `join` within [`RelayConfig::join_timeout`].
    pub fn connect(&mut self, now: Now) -> ConnId {
        let id = self.fresh_conn();
        let conn = Conn {
            opened: now.instant,
            bucket: TokenBucket::new(self.config.message_rate, now.instant),
            key_bucket: TokenBucket::new(self.config.key_message_rate(), now.instant),
            track_bucket: TokenBucket::new(self.config.track_change_rate(), now.instant),
            shares: Shares::default(),
            strikes: [0; 2],
            room: None,
            e2ee_stats: E2eeStatsState::default(),
            offers_first: None,
            pending: None,
        };
        self.conns.insert(id, conn);
        id
    }

    /// A text message from a connection: rate limited, decoded, then handled. Returns its
    /// type (`ClientMessage::type_name`, or `"invalid"` when it did not decode), for the
    /// operator's message counts.
    pub fn handle_text(&mut self, now: Now, conn: ConnId, text: &str) -> &'static str {
        // Decoded first (bounded by the message size limit) to charge the right bucket; input
        // that does not decode is charged to the general one.
        let decoded = ClientMessage::decode(text);
        let type_name = decoded.as_ref().map_or("invalid", ClientMessage::type_name);
        let keys = decoded.as_ref().is_ok_and(is_key_message);
        if !self.take_rate_token(now.instant, conn, keys) {
            return type_name;
        }
        match decoded {
            Ok(message) => self.dispatch(now, conn, message),
            Err(err) => {
                let refusal_text = err.client_message();
                self.refuse_input(now.instant, conn, err.code(), refusal_text);
            }
        }
        type_name
    }

    /// A message already decoded (by an in-process client): rate limited and size checked like
    /// text, then handled.
    pub fn handle_message(&mut self, now: Now, conn: ConnId, message: ClientMessage) {
        if !self.take_rate_token(now.instant, conn, is_key_message(&message)) {
            return;
        }
        match message.check_limits() {
            Ok(()) => self.dispatch(now, conn, message),
            Err(err) => {
                self.refuse_input(now.instant, conn, ErrorCode::FieldTooLarge, err.to_string())
            }
        }
    }

    /// The connection closed on its own: it leaves its room, if it was in one.
    pub fn disconnected(&mut self, now: Now, conn: ConnId) {
        self.forget_conn(now.instant, conn, LeaveReason::Disconnected);
    }

    /// A subscriber's media session asked for a keyframe (RTCP PLI or FIR) on `track`.
    pub fn request_keyframe(&mut self, now: Now, subscriber: ConnId, track: TrackId) {
        // Media-side requests for tracks that just went away are normal: nothing to report.
        let _ = self.keyframe_request(now.instant, subscriber, track, true);
    }

    /// Runs the timers due at `now`: join timeouts, merged keyframe and rekey requests, expiry
    /// of empty and closed rooms.
    pub fn handle_timeout(&mut self, now: Now) {
        let now = now.instant;
        let late: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.room.is_none() && self.join_deadline(c).is_some_and(|at| at <= now))
            .map(|(&id, _)| id)
            .collect();
        for conn in late {
            // A join whose token was verified and whose claim the store never answered names
            // whom its token named.
            let who = self
                .conns
                .get(&conn)
                .and_then(|c| c.pending.as_ref())
                .map(|p| p.who());
            self.out.push(Output::Audit(Audit::JoinRefused {
                conn,
                code: ErrorCode::JoinTimeout,
                who,
            }));
            self.close_with_error(
                now,
                conn,
                ErrorCode::JoinTimeout,
                "no join in time",
                LeaveReason::Disconnected,
            );
        }

        let interval = self.config.keyframe_interval;
        let rekey_interval = self.config.rekey_interval;
        for room in self.rooms.values_mut() {
            room.poll_rekey(now, rekey_interval, &mut self.out);
            for p in &mut room.publications {
                if p.keyframe.poll(now, interval) {
                    self.out.push(Output::RequestKeyframe {
                        publisher: p.publisher,
                        track: p.info.track,
                    });
                }
            }
        }

        let config = &self.config;
        self.rooms.retain(|_, room| {
            !(room.members.is_empty() && room.expires_at(config).is_some_and(|at| at <= now))
        });
    }

    /// Whether `conn`'s client said it sends the first SDP offer (`None`: it did not say, or
    /// `conn` has not joined).
    pub fn offers_first(&self, conn: ConnId) -> Option<bool> {
        self.conns.get(&conn).and_then(|c| c.offers_first)
    }

    /// The room `conn` has joined, if it has.
    pub fn room_of(&self, conn: ConnId) -> Option<&RoomId> {
        self.conns.get(&conn).and_then(|c| c.room.as_ref())
    }

    /// When [`Relay::handle_timeout`] should next run, if anything is waiting. Scans every
    /// connection and room (fine for thousands; a timer wheel would replace it beyond that).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let joins = self
            .conns
            .values()
            .filter(|c| c.room.is_none())
            .filter_map(|c| self.join_deadline(c));
        let interval = self.config.keyframe_interval;
        let keyframes = self
            .rooms
            .values()
            .flat_map(|r| r.publications.iter())
            .filter_map(|p| p.keyframe.deadline(interval));
        let rekey_interval = self.config.rekey_interval;
        let rekeys = self
            .rooms
            .values()
            .filter_map(|r| r.rekey.deadline(rekey_interval));
        let rooms = self
            .rooms
            .values()
            .filter(|r| r.members.is_empty())
            .filter_map(|r| r.expires_at(&self.config));
        joins.chain(keyframes).chain(rekeys).chain(rooms).min()
    }

    /// The next thing for the adapters to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop()
    }

    /// Sets a room's own limits, creating it (empty) if it does not exist yet.
    pub fn configure_room(
        &mut self,
        now: Now,
        room: RoomId,
        settings: RoomSettings,
    ) -> Result<(), ErrorCode> {
        if let Some(existing) = self.rooms.get_mut(&room) {
            if existing.closed_at.is_some() {
                return Err(ErrorCode::RoomClosed);
            }
            existing.settings = settings;
            return Ok(());
        }
        if self.rooms.len() >= self.config.max_rooms {
            return Err(ErrorCode::ServerFull);
        }
        let new = self.new_room(room.clone(), settings, now.instant);
        self.rooms.insert(room, new);
        Ok(())
    }

    /// How many rooms the relay holds (closed ones it still remembers included).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// How many participants are in all rooms together.
    pub fn participant_total(&self) -> usize {
        self.rooms.values().map(|r| r.participants().count()).sum()
    }

    /// How many participants are in `room`, if it exists.
    pub fn participant_count(&self, room: &RoomId) -> Option<usize> {
        self.rooms.get(room).map(|r| r.participants().count())
    }

    /// Who receives `track` published on `publisher` (the forwarding table).
    pub fn subscribers(&self, publisher: ConnId, track: TrackId) -> Vec<ConnId> {
        let room = self.conns.get(&publisher).and_then(|c| c.room.as_ref());
        room.and_then(|r| self.rooms.get(r))
            .and_then(|r| {
                r.publications
                    .iter()
                    .find(|p| p.info.track == track && p.publisher == publisher)
            })
            .map(|p| p.subscribers.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Who published `track` on `publisher`, if it is still published.
    pub fn track_publisher(
        &self,
        publisher: ConnId,
        track: TrackId,
    ) -> Option<hush_proto::ParticipantId> {
        let room = self.conns.get(&publisher).and_then(|c| c.room.as_ref())?;
        self.rooms
            .get(room)?
            .publications
            .iter()
            .find(|p| p.info.track == track && p.publisher == publisher)
            .map(|p| p.info.participant.clone())
    }

    fn join_deadline(&self, conn: &Conn) -> Option<Instant> {
        conn.opened.checked_add(self.config.join_timeout)
    }

    /// Takes a message token from the connection's bucket (the key-message bucket for `keys`).
    /// Dropped messages are answered with one `rate_limited` error per burst; too many in a row
    /// close the connection.
    fn take_rate_token(&mut self, now: Instant, conn: ConnId, keys: bool) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false; // closed already: late input is ignored
        };
        let (bucket, strikes) = if keys {
            (&mut c.key_bucket, &mut c.strikes[1])
        } else {
            (&mut c.bucket, &mut c.strikes[0])
        };
        if bucket.try_take(now) {
            *strikes = 0;
            return true;
        }
        *strikes = strikes.saturating_add(1);
        let strikes = *strikes;
        if strikes > self.config.max_rate_strikes {
            self.out.push(Output::Audit(Audit::Abuse {
                conn,
                code: ErrorCode::RateLimited,
            }));
            self.close_with_error(
                now,
                conn,
                ErrorCode::RateLimited,
                "too many messages",
                LeaveReason::Disconnected,
            );
        } else if strikes == 1 {
            self.out.error(
                conn,
                ErrorCode::RateLimited,
                "too many messages: dropped",
                false,
            );
        }
        false
    }

    /// Bad input: fatal before `join` (the first message must be a valid join), otherwise only
    /// the message is dropped.
    fn refuse_input(&mut self, now: Instant, conn: ConnId, code: ErrorCode, message: String) {
        let joined = self.conns.get(&conn).is_some_and(|c| c.room.is_some());
        if joined {
            self.out.error(conn, code, message, false);
        } else {
            self.close_with_error(now, conn, code, message, LeaveReason::Disconnected);
        }
    }

    /// Sends a fatal error, closes the connection and forgets it (a leave, if it was in a room).
    pub(super) fn close_with_error(
        &mut self,
        now: Instant,
        conn: ConnId,
        code: ErrorCode,
        message: impl Into<String>,
        reason: LeaveReason,
    ) {
        if self.conns.contains_key(&conn) {
            self.out.error(conn, code, message, true);
            self.forget_conn(now, conn, reason);
        }
    }

    pub(super) fn refuse_fatally(
        &mut self,
        now: Instant,
        conn: ConnId,
        refusal: Refusal,
        reason: LeaveReason,
    ) {
        self.close_with_error(now, conn, refusal.code, refusal.message, reason);
    }

    /// Forgets a connection; if it was in a room, it leaves it.
    pub(super) fn forget_conn(&mut self, now: Instant, conn: ConnId, reason: LeaveReason) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(room_id) = c.room else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&room_id)
            && let Some(member) = room.remove_member(now, conn, reason, true, &mut self.out)
        {
            let audit = Audit::Left {
                room: room_id.clone(),
                participant: member.info.id,
                reason,
            };
            self.out.push(Output::Audit(audit));
            self.stop_recording_if_empty(now, &room_id);
        }
    }
}

/// Key-exchange messages, which have their own rate-limit bucket.
fn is_key_message(message: &ClientMessage) -> bool {
    matches!(
        message,
        ClientMessage::E2ee(_) | ClientMessage::E2eeBroadcast(_)
    )
}
