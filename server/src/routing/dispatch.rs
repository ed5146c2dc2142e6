//! Handling each client message: `join` on a fresh connection, everything else in a room.

use std::collections::BTreeMap;
use std::time::Instant;

use hush_proto::{
    ClientMessage, E2eeBroadcast, E2eeDropReason, E2eeFrom, E2eeStats, E2eeTo, ErrorCode, Grants,
    Join, LeaveReason, MAX_E2EE_STATS_COUNT, ParticipantId, Publish, RecordAction, RecordingEnd,
    RoomId, ServerMessage, TrackId,
};

use super::outbox::Refusal;
use super::output::{
    Audit, ConnId, E2eeHealth, MediaSignal, ModerationAction, Output, RecordingAction, TokenClaim,
};
use super::relay::{Conn, PendingJoin, Relay};
use super::room::Newcomer;
use crate::time::Now;

const NOT_IN_ROOM: Refusal = Refusal::new(ErrorCode::InternalError, "internal error");

/// A key-exchange message over the sender's share of a recipient's queue.
const OVER_SHARE: Refusal = Refusal::new(
    ErrorCode::RateLimited,
    "too many key-exchange messages to one participant: dropped",
);

/// Takes `sender`'s share of each recipient's queue for one key-exchange message
/// ([`super::share`]), or refuses it. It keeps a bucket for each member of its room, twice over
/// for those that left lately.
fn take_shares(
    conns: &mut BTreeMap<ConnId, Conn>,
    config: &super::RelayConfig,
    now: Instant,
    sender: ConnId,
    recipients: &[ConnId],
) -> Result<(), Refusal> {
    let max_entries = usize::try_from(config.max_participants_per_room)
        .unwrap_or(usize::MAX)
        .saturating_mul(2);
    let shares = &mut conns.get_mut(&sender).ok_or(NOT_IN_ROOM)?.shares;
    if shares.take_all(now, config.pair_key_message_rate(), max_entries, recipients) {
        Ok(())
    } else {
        Err(OVER_SHARE)
    }
}

impl Relay {
    pub(super) fn dispatch(&mut self, now: Now, conn: ConnId, message: ClientMessage) {
        let Some(room) = self.conns.get(&conn).map(|c| c.room.clone()) else {
            return;
        };
        match (room, message) {
            (None, ClientMessage::Join(join)) => self.join(now, conn, join),
            (None, _) => self.close_with_error(
                now.instant,
                conn,
                ErrorCode::NotJoined,
                "the first message must be join",
                LeaveReason::Disconnected,
            ),
            (Some(room), message) => {
                if let Err(refusal) = self.in_room(now, conn, room, message) {
                    self.out.refuse(conn, refusal, false);
                }
            }
        }
    }

    fn join(&mut self, now: Now, conn: ConnId, join: Join) {
        if self.conns.get(&conn).is_some_and(|c| c.pending.is_some()) {
            let message = "a join is already being checked";
            return self.refuse_join(now.instant, conn, ErrorCode::AlreadyJoined, message, None);
        }
        let verified = self
            .tokens
            .verify(now.unix_secs(), join.token.expose(), join.room.as_ref());
        let claims = match verified {
            Ok(claims) => claims,
            Err(err) => {
                return self.refuse_join(now.instant, conn, err.code(), err.to_string(), None);
            }
        };
        let jti = claims.jti.clone().filter(|_| self.config.token_store);
        let forget_after = self.tokens.forget_after(&claims);
        let pending = PendingJoin {
            claims,
            identity_key: join.identity_key,
            attestation: join.attestation,
            offers_first: join.offers_first,
        };
        match (jti, self.conns.get_mut(&conn)) {
            (Some(jti), Some(c)) => {
                c.pending = Some(Box::new(pending));
                self.out.push(Output::ClaimToken {
                    conn,
                    jti,
                    forget_after,
                });
            }
            (Some(_), None) => {}
            (None, _) => self.admit_join(now, conn, pending),
        }
    }

    /// The token store's answer for `conn`'s join ([`Output::ClaimToken`]): admits it when its
    /// token id was fresh, refuses it otherwise. An answer for a connection that closed or is
    /// not waiting is ignored.
    pub fn token_claimed(&mut self, now: Now, conn: ConnId, claim: TokenClaim) {
        let Some(pending) = self.conns.get_mut(&conn).and_then(|c| c.pending.take()) else {
            return;
        };
        match claim {
            TokenClaim::Fresh => self.admit_join(now, conn, *pending),
            TokenClaim::Used => {
                let err = crate::token::TokenError::Replayed;
                let who = Some(pending.who());
                self.refuse_join(now.instant, conn, err.code(), err.to_string(), who);
            }
            TokenClaim::Unavailable => {
                // Not the token's fault: it was not used, it may try again.
                if let Some(jti) = &pending.claims.jti {
                    self.tokens.release(jti);
                }
                let message = "the relay cannot check tokens for reuse right now: try again";
                let who = Some(pending.who());
                self.refuse_join(now.instant, conn, ErrorCode::ServerBusy, message, who);
            }
        }
    }

    /// Admits a join whose token passed every check.
    fn admit_join(&mut self, clock: Now, conn: ConnId, join: PendingJoin) {
        let now = clock.instant;
        let claims = join.claims;
        let room_id = claims.room;
        let horizon = self.removal_horizon();
        let leeway = self.tokens.policy().leeway_secs;
        let unix = clock.unix_secs();
        if !self
            .removals
            .admits(unix, horizon, leeway, &room_id, &claims.sub, claims.iat)
        {
            let message = "a moderator removed you from this room: it takes a token the app \
                           issues after the removal (past the clock leeway)";
            let who = Some((room_id, claims.sub));
            return self.refuse_join(now, conn, ErrorCode::Removed, message, who);
        }
        if !self
            .removals
            .admits_after_close(unix, horizon, leeway, &room_id, claims.iat)
        {
            let message = "this room was closed: it takes a token the app issues after the \
                           close (past the clock leeway)";
            let who = Some((room_id, claims.sub));
            return self.refuse_join(now, conn, ErrorCode::RoomClosed, message, who);
        }
        if let Err(refusal) = self.admit(now, &room_id, &claims.sub) {
            let who = Some((room_id, claims.sub));
            return self.refuse_join(now, conn, refusal.code, refusal.message, who);
        }
        let newcomer = Newcomer {
            id: claims.sub.clone(),
            conn,
            identity_key: join.identity_key,
            attestation: join.attestation,
            grants: claims.grants,
            role: hush_proto::MemberRole::Participant,
        };
        let (Some(room), Some(c)) = (self.rooms.get_mut(&room_id), self.conns.get_mut(&conn))
        else {
            self.refuse_fatally(now, conn, NOT_IN_ROOM, LeaveReason::Disconnected);
            return;
        };
        room.admit(newcomer, &mut self.out);
        c.room = Some(room_id.clone());
        c.offers_first = join.offers_first;
        self.out.push(Output::Audit(Audit::Joined {
            room: room_id,
            participant: claims.sub,
            conn,
        }));
    }

    /// A refused join: audited (with whom its token named, once verified), then fatal.
    fn refuse_join(
        &mut self,
        now: Instant,
        conn: ConnId,
        code: ErrorCode,
        message: impl Into<String>,
        who: Option<(RoomId, ParticipantId)>,
    ) {
        self.out
            .push(Output::Audit(Audit::JoinRefused { conn, code, who }));
        self.close_with_error(now, conn, code, message, LeaveReason::Disconnected);
    }

    /// Finds or creates the room and checks that `participant` may enter; a member with the same
    /// id on another connection is replaced (it leaves first).
    fn admit(
        &mut self,
        now: Instant,
        room_id: &RoomId,
        participant: &ParticipantId,
    ) -> Result<(), Refusal> {
        self.ensure_room(room_id, now)?;
        let room = self.rooms.get_mut(room_id).ok_or(NOT_IN_ROOM)?;
        let replaces = room.check_admission(participant, &self.config)?;
        if !room
            .admissions
            .admit(participant, now, self.config.admissions_per_minute)
        {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "joined this room too often within a minute: wait before joining again",
            ));
        }
        if let Some(old) = replaces {
            let message = "you joined again on another connection";
            self.close_with_error(
                now,
                old,
                ErrorCode::Replaced,
                message,
                LeaveReason::Replaced,
            );
        }
        Ok(())
    }

    /// A message from a member of `room_id`.
    fn in_room(
        &mut self,
        clock: Now,
        conn: ConnId,
        room_id: RoomId,
        message: ClientMessage,
    ) -> Result<(), Refusal> {
        let now = clock.instant;
        let room = self.rooms.get_mut(&room_id).ok_or(NOT_IN_ROOM)?;
        let member = room.member_by_conn(conn).ok_or(NOT_IN_ROOM)?;
        let (me, grants): (ParticipantId, Grants) =
            (member.info.id.clone(), member.info.grants.clone());
        let command = message.type_name();
        match message {
            ClientMessage::Join(_) => {
                return Err(Refusal::new(ErrorCode::AlreadyJoined, "already joined"));
            }
            ClientMessage::Leave => {
                self.forget_conn(now, conn, LeaveReason::Left);
                self.out.push(Output::Close { conn });
            }
            ClientMessage::Offer(sdp) => self.hand_to_media(conn, MediaSignal::Offer(sdp)),
            ClientMessage::Answer(sdp) => self.hand_to_media(conn, MediaSignal::Answer(sdp)),
            ClientMessage::Candidate(c) => self.hand_to_media(conn, MediaSignal::Candidate(c)),
            ClientMessage::Publish(Publish { source, mid }) => {
                if !grants.publish {
                    return Err(Refusal::new(
                        ErrorCode::PublishNotAllowed,
                        "your token does not allow publishing",
                    ));
                }
                if !grants.may_publish(source) {
                    return Err(Refusal::new(
                        ErrorCode::SourceNotAllowed,
                        "your token does not allow this source",
                    ));
                }
                track_change(&mut self.conns, conn, now)?;
                room.publish(conn, source, mid, &mut self.out)?;
            }
            ClientMessage::Unpublish(u) => {
                track_change(&mut self.conns, conn, now)?;
                room.unpublish(conn, u.source, true, &mut self.out)?;
            }
            ClientMessage::Subscribe(t) => {
                if !grants.subscribe {
                    return Err(Refusal::new(
                        ErrorCode::SubscribeNotAllowed,
                        "your token does not allow subscribing",
                    ));
                }
                room.set_subscribed(conn, t.track, true, &mut self.out)?;
            }
            ClientMessage::Unsubscribe(t) => {
                room.set_subscribed(conn, t.track, false, &mut self.out)?
            }
            ClientMessage::E2ee(E2eeTo { to, payload }) => {
                // Only to a member of the sender's own room: the lookup is in this room alone.
                let recipient = room.member(&to).ok_or(Refusal::new(
                    ErrorCode::UnknownParticipant,
                    "no such participant in your room",
                ))?;
                let to = recipient.conn;
                take_shares(&mut self.conns, &self.config, now, conn, &[to])?;
                let message = ServerMessage::E2ee(E2eeFrom { from: me, payload });
                self.out.send(to, message);
            }
            ClientMessage::E2eeBroadcast(E2eeBroadcast { payload }) => {
                // One message in, one copy to every other member of the sender's room: to all
                // of them, or, if one's share is spent, to none.
                let others: Vec<ConnId> = room
                    .members
                    .iter()
                    .filter(|m| m.conn != conn)
                    .map(|m| m.conn)
                    .collect();
                take_shares(&mut self.conns, &self.config, now, conn, &others)?;
                let message = ServerMessage::E2ee(E2eeFrom { from: me, payload });
                for other in others {
                    self.out.send(other, message.clone());
                }
            }
            ClientMessage::KeyframeRequest(t) => {
                self.keyframe_request(now, conn, t.track, false)?
            }
            ClientMessage::VideoSize(size) => {
                self.subscription(conn, size.track)?;
                self.out.push(Output::VideoSize {
                    subscriber: conn,
                    track: size.track,
                    width: size.width,
                    height: size.height,
                });
            }
            ClientMessage::Rekey(_) => {
                // Any member may ask (the committer's timer, a sender near its usage limit);
                // the point names who asked, and only the committer's asking makes members
                // draw a fresh epoch (the rest ratchet, with no envelopes), so a member asking
                // every second costs the committer one switch notice per second, not a fan-out.
                // The reason is informational and goes nowhere.
                room.request_rekey(now, self.config.rekey_interval, &me, &mut self.out);
            }
            ClientMessage::ForceDisconnect(f) => {
                self.moderator(&grants, &room_id, &me, command)?;
                self.remove_participant_as(clock, &room_id, &f.participant, Some(me))?;
            }
            ClientMessage::ForceUnpublish(f) => {
                self.moderator(&grants, &room_id, &me, command)?;
                self.unpublish_as(&room_id, &f.participant, f.source, Some(me))?;
            }
            ClientMessage::LockRoom(l) => {
                self.moderator(&grants, &room_id, &me, command)?;
                self.set_locked_as(&room_id, l.locked, Some(me))?;
            }
            ClientMessage::CloseRoom => {
                self.moderator(&grants, &room_id, &me, command)?;
                self.close_room_as(clock, &room_id, Some(me))?;
            }
            ClientMessage::Record(r) => {
                if !grants.record {
                    let refusal = Refusal::new(
                        ErrorCode::RecordNotAllowed,
                        "recording needs the record grant",
                    );
                    let action = RecordingAction::Refused(refusal.code);
                    self.out.push(Output::Audit(Audit::Recording {
                        room: room_id.clone(),
                        by: Some(me),
                        action,
                    }));
                    return Err(refusal);
                }
                match r.action {
                    RecordAction::Start => self.start_recording_as(now, &room_id, Some(me))?,
                    RecordAction::Stop => {
                        self.stop_recording_as(now, &room_id, Some(me), RecordingEnd::Stopped)?
                    }
                }
            }
            ClientMessage::Ping(p) => self.out.send(conn, ServerMessage::Pong(p)),
            ClientMessage::E2eeStats(stats) => self.e2ee_stats(now, conn, &stats),
        }
        Ok(())
    }

    /// A member's E2EE health report: rate limited per connection (silently), bounded, then
    /// handed to the metrics. Never answered: a client learns nothing from it.
    fn e2ee_stats(&mut self, now: Instant, conn: ConnId, stats: &E2eeStats) {
        let interval = self.config.e2ee_stats_interval;
        let Some(state) = self.conns.get_mut(&conn).map(|c| &mut c.e2ee_stats) else {
            return;
        };
        let due = state
            .last_report
            .and_then(|t| t.checked_add(interval))
            .is_none_or(|at| now >= at);
        if state.finished || !(due || stats.last) {
            self.out.push(Output::E2eeHealth(E2eeHealth::RateLimited));
            return;
        }
        state.last_report = Some(now);
        state.finished = stats.last;
        // Epochs only go forward (a fresh random epoch is still the next number); a report
        // that names a lower one (a client restarting its key layer) sets a new baseline.
        let epoch_changes = match (state.epoch, stats.epoch) {
            (Some(old), Some(new)) => new.saturating_sub(old).min(MAX_E2EE_STATS_COUNT),
            _ => 0,
        };
        if stats.epoch.is_some() {
            state.epoch = stats.epoch;
        }
        let mut dropped: Vec<(E2eeDropReason, u64)> = Vec::new();
        for (name, &count) in &stats.dropped {
            let reason = E2eeDropReason::from_wire(name);
            match dropped.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, sum)) => *sum = sum.saturating_add(count).min(MAX_E2EE_STATS_COUNT),
                None => dropped.push((reason, count.min(MAX_E2EE_STATS_COUNT))),
            }
        }
        dropped.retain(|&(_, count)| count > 0);
        dropped.sort_unstable();
        self.out.push(Output::E2eeHealth(E2eeHealth::Report {
            dropped,
            decrypted: stats.decrypted.min(MAX_E2EE_STATS_COUNT),
            epoch_changes,
        }));
    }

    fn hand_to_media(&mut self, conn: ConnId, signal: MediaSignal) {
        self.out.push(Output::Media { conn, signal });
    }

    /// `subscriber`'s subscription to `track` (another member's, received now, with the
    /// subscribe grant), or the precise refusal.
    fn subscription(
        &mut self,
        subscriber: ConnId,
        track: TrackId,
    ) -> Result<&mut super::room::Publication, Refusal> {
        let unknown = Refusal::new(ErrorCode::UnknownTrack, "no such track in your room");
        let room_id = self
            .conns
            .get(&subscriber)
            .and_then(|c| c.room.clone())
            .or_else(|| self.recording_room(subscriber))
            .ok_or(unknown)?;
        let room = self.rooms.get_mut(&room_id).ok_or(unknown)?;
        let may_subscribe = room
            .member_by_conn(subscriber)
            .is_some_and(|m| m.info.grants.subscribe);
        let publication = room
            .publication_mut(track)
            .filter(|p| p.publisher != subscriber)
            .ok_or(unknown)?;
        if !may_subscribe {
            return Err(Refusal::new(
                ErrorCode::SubscribeNotAllowed,
                "this needs the subscribe grant",
            ));
        }
        if !publication.subscribers.contains(&subscriber) {
            return Err(Refusal::new(
                ErrorCode::NotSubscribed,
                "you do not receive this track",
            ));
        }
        Ok(publication)
    }

    /// A keyframe request from `subscriber` for `track` in its room, through the track's gate.
    /// Only a member with the `subscribe` grant that receives the track may ask: anyone else
    /// could otherwise make a publisher send keyframes (large frames) at the gate's full rate.
    /// A keyframe request of `subscriber` for `track`; `from_media`: it came from the
    /// subscriber's media session (RTCP, or the relay's own ask once the subscriber's
    /// connection is up), which alone may claim the subscriber's first, unthrottled request: a
    /// keyframe asked over signaling before the connection is up is lost on the way.
    pub(super) fn keyframe_request(
        &mut self,
        now: Instant,
        subscriber: ConnId,
        track: TrackId,
        from_media: bool,
    ) -> Result<(), Refusal> {
        let (interval, grace) = (self.config.keyframe_interval, self.config.keyframe_grace);
        let publication = self.subscription(subscriber, track)?;
        // A subscriber's first media-side request (it decodes nothing until a keyframe comes)
        // is not held for the interval; a request right after one went out is answered by it.
        let first = from_media && publication.keyframe_started.insert(subscriber);
        if publication
            .keyframe
            .request_with_grace(now, interval, grace, first)
        {
            let publisher = publication.publisher;
            self.out.push(Output::RequestKeyframe { publisher, track });
        }
        Ok(())
    }
}

impl Relay {
    /// Refuses a moderator command from a member without the moderator grant, and writes the
    /// attempt to the audit trail (`command`: the message's `type_name`).
    fn moderator(
        &mut self,
        grants: &Grants,
        room: &RoomId,
        me: &ParticipantId,
        command: &'static str,
    ) -> Result<(), Refusal> {
        if grants.moderator {
            return Ok(());
        }
        let code = ErrorCode::ModeratorRequired;
        self.out.push(Output::Audit(Audit::Moderation {
            room: room.clone(),
            moderator: Some(me.clone()),
            action: ModerationAction::Refused { command, code },
        }));
        Err(Refusal::new(
            code,
            "moderator commands need the moderator grant",
        ))
    }
}

/// Takes a token from `conn`'s publish/unpublish bucket, or refuses the change.
fn track_change(
    conns: &mut std::collections::BTreeMap<ConnId, Conn>,
    conn: ConnId,
    now: Instant,
) -> Result<(), Refusal> {
    let c = conns.get_mut(&conn).ok_or(NOT_IN_ROOM)?;
    if c.track_bucket.try_take(now) {
        Ok(())
    } else {
        Err(Refusal::new(
            ErrorCode::RateLimited,
            "too many publish and unpublish: slow down",
        ))
    }
}
